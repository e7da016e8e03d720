"""benchmarks.oracle_maps: the true coil maps put in place of the learned ones, phase-aligned."""
import dataclasses

import numpy as np
import pytest
import torch

from benchmarks.oracle_maps import FixedMaps, aligned_maps, compare, sensitivity_replaced
from model.coils import normalise_to_unit_rss
from model.config import preset
from model.generator import GenreGenerator
from simulation.realistic import Acquisition
from training.simulated import KINDS, SimulatedSampler, domain_names, phantom_pool


def test_aligned_maps_keep_the_true_magnitudes_and_take_the_learned_common_phase():
    generator = torch.Generator().manual_seed(0)
    true = torch.randn(1, 4, 6, 7, dtype=torch.complex64, generator=generator)
    common = torch.rand(1, 3, 1, 6, 7, generator=generator) * 6 - 3                # one phase per frame and pixel
    learned = normalise_to_unit_rss(true)[:, None] * torch.exp(1j * common)
    aligned = aligned_maps(true * 5.0, learned)                                   # the true maps' scale is irrelevant
    torch.testing.assert_close(aligned, learned, atol=1e-5, rtol=1e-5)
    other = torch.randn(1, 3, 4, 6, 7, dtype=torch.complex64, generator=generator)
    torch.testing.assert_close(aligned_maps(true, other).abs(),
                               normalise_to_unit_rss(true)[:, None].abs().expand(1, 3, 4, 6, 7))


@pytest.fixture(scope="module")
def windows():
    series = phantom_pool(1, np.random.default_rng(0))
    sampler = SimulatedSampler(series, domain_names(series), Acquisition(measured_coils=0.0, coil_counts=(3,)),
                               {kind: 1.0 for kind in KINDS}, crop_width=32, keep_maps=True)
    rng = np.random.default_rng(1)
    return [sampler.draw(rng, (8,)) for _ in range(2)]


def test_simulated_windows_carry_their_maps_only_when_asked(windows):
    for sample in windows:
        assert sample.maps.shape == (1, *sample.masked_kspace.shape[2:]) and sample.maps.is_complex()
    series = phantom_pool(1, np.random.default_rng(0))
    plain = SimulatedSampler(series, domain_names(series), Acquisition(measured_coils=0.0, coil_counts=(3,)),
                             {"kt": 1.0}, crop_width=32)
    assert plain.draw(np.random.default_rng(1), (8,)).maps is None


def test_the_generator_uses_the_given_maps_inside_the_block_and_its_own_after(windows):
    torch.manual_seed(0)
    generator = GenreGenerator(preset("tiny")).eval()
    sample = windows[0]
    inputs = (sample.masked_kspace, sample.mask, sample.num_acs, sample.radial, sample.shared_kspace)
    with torch.inference_mode():
        own = generator(*inputs)
        given = normalise_to_unit_rss(torch.ones_like(own.sens))
        with sensitivity_replaced(generator, FixedMaps(given)):
            replaced = generator(*inputs)
        again = generator(*inputs)
    torch.testing.assert_close(replaced.sens, given)
    assert not torch.allclose(replaced.image, own.image)
    torch.testing.assert_close(again.image, own.image)
    # its own maps given back as "true" reproduce the learned-maps score exactly
    with sensitivity_replaced(generator, FixedMaps(own.sens)), torch.inference_mode():
        torch.testing.assert_close(generator(*inputs).image, own.image)


def test_compare_scores_every_method_and_needs_the_maps(windows):
    generator = GenreGenerator(preset("tiny")).eval()
    means = compare(generator, windows)
    assert set(means) == {"zero-filled", "learned maps", "true maps"}
    assert all(np.isfinite(v).all() for v in means.values())
    without = [dataclasses.replace(windows[0], maps=None)]
    with pytest.raises(ValueError, match="coil maps"):
        compare(generator, without)
