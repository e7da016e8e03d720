"""simulation.geometry: the training anatomy's rotation and zoom, and how the trainer takes it."""
import dataclasses

import numpy as np
import pytest

from simulation.geometry import Geometry, rotate_zoom
from simulation.realistic import Acquisition
from training.config import PRESETS, TrainConfig
from training.simulated import KINDS, SimulatedSampler, domain_names, phantom_pool


def test_a_quarter_turn_moves_every_pixel_onto_the_grid_about_the_centre():
    rng = np.random.default_rng(0)
    images = rng.random((2, 33, 33)).astype(np.float32)
    turned = rotate_zoom(images, 90.0, 1.0)
    # exact on the grid (spline interpolation at the nodes); +90 degrees is numpy's rot90 with k = -1
    np.testing.assert_allclose(turned, np.rot90(images, k=-1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(rotate_zoom(turned, -90.0, 1.0), images, atol=1e-5)


def test_zoom_scales_the_anatomy_about_the_grid_centre_and_keeps_the_grid():
    ny, nx = 64, 80
    y, x = np.mgrid[:ny, :nx]
    disk = (((y - ny // 2) ** 2 + (x - nx // 2) ** 2) < 8 ** 2).astype(np.float32)[None]
    larger = rotate_zoom(disk, 0.0, 1.5)
    assert larger.shape == disk.shape and larger.min() >= 0 and larger.max() <= 1
    assert larger.sum() / disk.sum() == pytest.approx(1.5 ** 2, rel=0.05)
    centroid = [(larger[0] * grid).sum() / larger.sum() for grid in (y, x)]
    np.testing.assert_allclose(centroid, [ny // 2, nx // 2], atol=0.05)
    assert rotate_zoom(disk, 0.0, 1.0) is disk                                 # off: the series itself


def test_geometry_draws_within_its_ranges_and_rejects_others():
    rng = np.random.default_rng(1)
    draws = np.array([Geometry(rotate_degrees=20, zoom=0.1).draw(rng) for _ in range(500)])
    assert np.abs(draws[:, 0]).max() <= 20 and np.abs(draws[:, 0]).max() > 15
    assert draws[:, 1].min() >= 1 / 1.1 - 1e-9 and draws[:, 1].max() <= 1.1 + 1e-9
    assert np.median(draws[:, 1]) == pytest.approx(1.0, abs=0.02)
    assert not Geometry().active and Geometry(zoom=0.1).active
    for bad in ({"rotate_degrees": -1}, {"zoom": 1.0}, {"zoom": -0.1}):
        with pytest.raises(ValueError):
            Geometry(**bad)


def _sampler(geometry: Geometry) -> SimulatedSampler:
    series = phantom_pool(2, np.random.default_rng(0))
    return SimulatedSampler(series, domain_names(series), Acquisition(measured_coils=0.0, coil_counts=(4,)),
                            {kind: 1.0 for kind in KINDS}, crop_width=64, geometry=geometry)


def test_the_sampler_draws_rotated_windows_only_when_switched_on():
    plain, off, on = _sampler(Geometry()), _sampler(Geometry()), _sampler(Geometry(rotate_degrees=30, zoom=0.2))
    draws = {name: s.draw(np.random.default_rng(5), (8,)) for name, s in (("plain", plain), ("off", off), ("on", on))}
    # off: the very windows of a sampler without geometry (no extra random draw shifts the stream)
    np.testing.assert_array_equal(draws["plain"].target.numpy(), draws["off"].target.numpy())
    assert draws["on"].target.shape == draws["plain"].target.shape
    assert not np.allclose(draws["on"].target.numpy(), draws["plain"].target.numpy())


def test_geometry_survives_the_checkpoint_record_and_the_command_line():
    from training.__main__ import build_config, parse_args
    config = dataclasses.replace(PRESETS["cpu"], geometry=Geometry(rotate_degrees=15, zoom=0.1))
    assert TrainConfig.from_dict(config.to_dict()) == config
    older = {k: v for k, v in config.to_dict().items() if k != "geometry"}
    assert TrainConfig.from_dict(older).geometry == Geometry()                   # records before the field
    assert build_config(parse_args(["--run-dir", "r"])).geometry == Geometry()
    assert build_config(parse_args(["--run-dir", "r", "--rotate", "15", "--zoom", "0.1"])).geometry == \
        Geometry(rotate_degrees=15, zoom=0.1)
    with pytest.raises(SystemExit, match="zoom"):
        build_config(parse_args(["--run-dir", "r", "--zoom", "1.5"]))
