"""Hard data consistency of the output (model.data_consistency.hard_consistent_image, predict.py --hard-dc)."""
import dataclasses

import numpy as np
import pytest
import torch

from model.checkpoint import save_generator
from model.coils import normalise_to_unit_rss, rss, sens_expand
from model.config import PRESETS
from model.data_consistency import hard_consistent_image, replace_measured
from model.fftc import ifft2c
from model.generator import GenreGenerator
from model.inference import GenreReconstructor
from model.reconstruction import VolumeMeta

torch.set_num_threads(1)


def complex_randn(*shape, generator=None):
    return torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))


def test_replace_measured_takes_the_measurement_where_sampled_only():
    estimate, measured = complex_randn(2, 3, 6, 5), complex_randn(2, 3, 6, 5)
    mask = (torch.rand(2, 1, 6, 5) < 0.4).float()
    out = replace_measured(estimate, measured, mask)
    sampled = mask.expand_as(out).bool()
    assert torch.equal(out[sampled], measured[sampled])
    assert torch.equal(out[~sampled], estimate[~sampled])


def test_hard_consistent_image_of_zero_is_the_zero_filled_rss_and_of_the_truth_the_truth():
    torch.manual_seed(0)
    sens = normalise_to_unit_rss(complex_randn(2, 4, 8, 7))
    truth = complex_randn(2, 8, 7)
    mask = (torch.rand(2, 1, 8, 7) < 0.3).float()
    measured = mask * sens_expand(truth, sens)
    torch.testing.assert_close(hard_consistent_image(torch.zeros_like(truth), sens, measured, mask),
                               rss(ifft2c(measured)))
    torch.testing.assert_close(hard_consistent_image(truth, sens, measured, mask), truth.abs(), rtol=1e-5,
                               atol=1e-5)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], view_sharing=True)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_generator(path, config, GenreGenerator(config).state_dict(), {"data": "random"})
    return path


@pytest.mark.parametrize("ensemble", [1, 2])
def test_fully_sampled_input_comes_back_as_its_rss_whatever_the_network(weights, ensemble):
    # every location measured: hard DC leaves nothing to the (random) network, through scaling and reflections
    rng = np.random.default_rng(1)
    nt, nz, nc, ny, nx = 5, 1, 3, 16, 13
    kspace = (rng.standard_normal((nt, nz, nc, ny, nx))
              + 1j * rng.standard_normal((nt, nz, nc, ny, nx))).astype(np.complex64) * 1e-3
    mask = np.ones((nt, ny, nx), dtype=bool)
    meta = VolumeMeta(num_acs=8, radial=False, cyclic=True, name="cine")
    hard = GenreReconstructor(weights, batch_size=2, ensemble=ensemble, hard_dc=True).reconstruct(kspace, mask, meta)
    truth = rss(ifft2c(torch.from_numpy(kspace)), dim=2).numpy()
    np.testing.assert_allclose(hard, truth, rtol=1e-4, atol=1e-4 * truth.max())
    plain = GenreReconstructor(weights, batch_size=2, ensemble=ensemble).reconstruct(kspace, mask, meta)
    assert np.abs(plain - truth).max() > 1e-2 * truth.max()


def test_hard_consistent_centre_uses_the_window_centre_frame():
    from model.generator import GeneratorOutput, hard_consistent_centre

    torch.manual_seed(3)
    frames, coils = 5, 3
    x, sens = complex_randn(2, frames, 8, 7), normalise_to_unit_rss(complex_randn(2, frames, coils, 8, 7))
    mask = (torch.rand(2, frames, 1, 8, 7) < 0.3).float()
    kspace = mask * complex_randn(2, frames, coils, 8, 7)
    output = GeneratorOutput(image=x[:, 2].abs(), complex_image=x, sens=sens, features=[], cascade_images=[])
    torch.testing.assert_close(hard_consistent_centre(output, kspace, mask),
                               hard_consistent_image(x[:, 2], sens[:, 2], kspace[:, 2], mask[:, 2]))


def test_predict_flag_reaches_the_reconstructor(weights, tmp_path):
    import predict
    from challenge.runner import RunOptions, _default_factory

    from model.reconstruction import DEFAULT_HARD_DC

    assert predict.parse_args(["--hard-dc"]).hard_dc and not predict.parse_args(["--no-hard-dc"]).hard_dc
    assert predict.parse_args([]).hard_dc == DEFAULT_HARD_DC == RunOptions(tmp_path, tmp_path).hard_dc
    options = RunOptions(input_root=tmp_path, output_root=tmp_path / "out", weights=weights, device="cpu",
                         hard_dc=True)
    assert _default_factory(options, (0, 1))("genre").hard_dc
