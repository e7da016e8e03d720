"""MATLAB's rounding, centring and size() (model/matlab.py), and the callers that must all use the one rule."""
from pathlib import Path

import numpy as np
import pytest

from challenge import rules
from challenge.masks import kt_radial_mask, uniform_mask
from model.acs import acs_region, central_range
from model.matlab import centred, centred_start, matlab_round, matlab_shape


@pytest.mark.parametrize("x, expected", [
    (42.5, 43), (2.5, 3), (5.5, 6), (1.5, 2), (0.5, 1), (-2.5, -3), (512 / 3, 171), (85 / 3, 28), (4.4, 4),
    (0.49999999999999994, 0), (7.0, 7),
])
def test_matlab_round(x, expected):
    assert matlab_round(x) == expected


def test_centred_follows_matlab_crop_m():
    assert centred(512, 171) == slice(171, 342)
    assert centred(246, 123) == slice(62, 185)
    assert centred(85, matlab_round(85 / 2)) == slice(21, 64)      # ny = 85 keeps 43 rows, not 42
    assert centred(9, 9) == slice(0, 9) and centred(8, 8) == slice(0, 8)
    assert centred(7, 2) == slice(2, 4) and centred(8, 3) == slice(3, 6)   # floor(n/2) + ceil(-m/2)
    for bad in (5, 0):
        with pytest.raises(ValueError):
            centred(4, bad)
    assert centred_start(4, 6) == -1                                   # callers that clip see the overhang


def test_matlab_shape_drops_trailing_singletons_only():
    assert matlab_shape((5, 4, 1, 1)) == (5, 4)
    assert matlab_shape((5, 4, 1, 3)) == (5, 4, 1, 3)
    assert matlab_shape((5, 1)) == (5, 1)


@pytest.mark.parametrize("length, size", [(246, 16), (85, 20), (77, 24), (20, 20), (33, 5)])
def test_the_acs_region_the_masks_and_the_crop_centre_alike(length, size):
    expected = centred(length, size)
    assert central_range(length, size) == range(expected.start, expected.stop)
    rows = np.flatnonzero(acs_region(length, 8, size).numpy().any(axis=1))
    assert (rows[0], rows[-1] + 1) == (expected.start, expected.stop)
    sampled = set(np.flatnonzero(uniform_mask(length, 4, length, size)[:, 0]))   # R = length: line 0 + the ACS
    assert sampled - {0} == set(range(expected.start, expected.stop)) - {0}
    square = kt_radial_mask(1, length, length, 2, size)[0]
    assert square[expected, expected].all()


def test_the_run4ranking_crop_is_centred():
    root = Path("/data")
    job = rules.parse_job(root, root / "Cine/ValidationSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat")
    image = np.arange(1 * 1 * 85 * 160, dtype=np.float32).reshape(1, 1, 85, 160)
    cropped = rules.to_output_array(job, image, True, crop=True)        # MATLAB order (nx', ny')
    rows, cols = centred(85, matlab_round(85 / 2)), centred(160, matlab_round(160 / 3))
    np.testing.assert_array_equal(cropped, image[0, 0, rows, cols].T)
