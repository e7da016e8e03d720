"""Simulation: phantom contrasts and motion, coil maps, noise level, real-anatomy loading (skipped if absent)."""
import numpy as np
import pytest
import torch

from model.coils import rss
from model.fftc import ifft2c
from simulation.acquisition import simulate_kspace, smooth_phase
from simulation.anatomy import RealDataMissing, list_cine_series, load_cine_resized, real_data_root
from simulation.coils import simulate_sensitivities
from simulation.phantom import CONTRASTS, phantom_series


@pytest.mark.parametrize("contrast", CONTRASTS)
def test_phantom_shapes_range_and_object_in_central_readout_half(contrast):
    series = phantom_series(contrast, 6, 60, 120, np.random.default_rng(0))
    assert series.shape == (6, 60, 120) and series.dtype == np.float32
    assert series.min() >= 0 and series.max() == pytest.approx(1.0)
    columns = series.sum(axis=(0, 1))
    assert columns[:24].sum() < 0.02 * columns.sum() and columns[-24:].sum() < 0.02 * columns.sum()


def test_cine_phantom_beats_cyclically_and_mapping_changes_contrast_not_anatomy():
    rng = np.random.default_rng(1)
    cine = phantom_series("cine", 12, 64, 128, rng)
    assert np.abs(cine[6] - cine[0]).mean() > 5 * np.abs(cine[11] - cine[0]).mean() / 2
    t2 = phantom_series("T2map", 3, 64, 128, rng)
    assert t2[2].mean() < t2[0].mean()              # T2 decay over the preparation times


@pytest.mark.parametrize("kind", ["surface", "random"])
def test_coil_maps_are_smooth_complex_and_distinct(kind):
    maps = simulate_sensitivities(8, 40, 80, np.random.default_rng(0), kind)
    assert maps.shape == (8, 40, 80) and maps.dtype == np.complex64
    assert np.abs(np.diff(maps, axis=-1)).max() < 0.2 * np.abs(maps).max()
    correlation = np.abs(np.vdot(maps[0], maps[1])) / (np.linalg.norm(maps[0]) * np.linalg.norm(maps[1]))
    assert correlation < 0.99


def test_simulated_kspace_reference_and_snr():
    rng = np.random.default_rng(2)
    magnitude = phantom_series("cine", 4, 64, 128, rng)[:, None]
    clean, clean_ref = simulate_kspace(magnitude, 8, np.random.default_rng(3), snr=1e9, scale=1.0)
    noisy, noisy_ref = simulate_kspace(magnitude, 8, np.random.default_rng(3), snr=20.0, scale=1.0)
    assert noisy.shape == (4, 1, 8, 64, 128) and noisy.dtype == np.complex64
    np.testing.assert_allclose(noisy_ref, rss(ifft2c(torch.from_numpy(noisy))).numpy(), rtol=1e-4, atol=1e-6)
    noise_std = np.std(ifft2c(torch.from_numpy(noisy - clean)).numpy().real) * np.sqrt(2)
    object_level = clean_ref[clean_ref > 0.1 * clean_ref.max()].mean()
    assert 10 < object_level / noise_std < 40       # requested 20, defined per coil on the object mean
    scaled, _ = simulate_kspace(magnitude, 8, np.random.default_rng(3), snr=20.0, scale=1e-5)
    np.testing.assert_allclose(scaled, noisy * 1e-5, rtol=1e-4, atol=1e-12)


def test_smooth_phase_is_smooth():
    phase = smooth_phase(50, 90, np.random.default_rng(0), 1.0)
    assert np.abs(np.diff(phase, axis=0)).max() < 0.5 and np.abs(np.diff(phase, axis=1)).max() < 0.5


def test_real_anatomy_loads_transposed_or_skips_clearly():
    if real_data_root() is None:
        with pytest.raises(RealDataMissing, match="GENRE_REAL_DATA"):
            list_cine_series()
        pytest.skip("../shared/data/real is absent")
    series = list_cine_series()
    assert {s.center for s in series} >= {"Center001", "Center005"}
    record = series[0]
    images = load_cine_resized(record, 50, 120)
    assert images.shape == (12, 50, 120) and 0 <= images.min() and images.max() <= 1
    assert record.shape[1] > record.shape[0]        # readout (nx) is the long axis after the transpose
