"""Test-time adaptation (model.adaptation): the held-back split, the fallback rule, the budget, the plumbing."""
import dataclasses

import numpy as np
import pytest
import torch

import predict
from model.adaptation import AdaptConfig, adapt_generator, holdout_split
from model.checkpoint import save_generator
from model.config import PRESETS
from model.generator import GenreGenerator
from model.inference import GenreReconstructor
from model.reconstruction import VolumeMeta, build_reconstructor

torch.set_num_threads(1)
META = VolumeMeta(num_acs=8, radial=False, cyclic=True, name="cine")


def cartesian_mask(ny=40, nx=24, seed=0) -> torch.Tensor:
    rows = np.random.default_rng(seed).random(ny) < 0.4
    rows[ny // 2 - 4:ny // 2 + 4] = True
    return torch.from_numpy(np.repeat(rows[:, None], nx, 1).astype(np.float32))


@pytest.mark.parametrize("radial", [False, True])
def test_holdout_split_is_disjoint_keeps_the_acs_and_holds_back_about_the_fraction(radial):
    mask = cartesian_mask() if not radial else torch.from_numpy(
        (np.random.default_rng(1).random((40, 24)) < 0.3).astype(np.float32))
    kept, held = holdout_split(mask, 8, radial, 0.4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(kept + held, mask)
    assert ((kept > 0) & (held > 0)).sum() == 0
    acs = slice(16, 24)
    assert held[acs, 8:16].sum() == 0 and (kept[acs, 8:16] == mask[acs, 8:16]).all()
    outside = mask.sum() - mask[acs, :].sum() if not radial else mask.sum() - mask[acs, 8:16].sum()
    assert 0.15 < float(held.sum() / outside) < 0.65
    if not radial:                                    # whole readout lines: rows are all-or-nothing
        assert ((held.sum(1) == 0) | (held.sum(1) == 24)).all()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    config = dataclasses.replace(PRESETS["tiny"], view_sharing=True)
    save_generator(path, config, GenreGenerator(config).state_dict(), {"data": "random"})
    return path


def volume(nt=6, nz=2, nc=3, ny=40, nx=24, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.stack([cartesian_mask(ny, nx, seed + t).numpy() > 0 for t in range(nt)])
    kspace = rng.standard_normal((nt, nz, nc, ny, nx)) + 1j * rng.standard_normal((nt, nz, nc, ny, nx))
    return (kspace * mask[:, None, None]).astype(np.complex64), mask


def test_zero_learning_rate_keeps_the_shipped_generator_and_its_output(weights):
    kspace, mask = volume()
    plain = GenreReconstructor(weights).reconstruct(kspace, mask, META)
    frozen = GenreReconstructor(weights, adapt=AdaptConfig(steps=2, lr=0.0))
    np.testing.assert_allclose(frozen.reconstruct(kspace, mask, META), plain, rtol=1e-5, atol=1e-6)
    result = frozen.last_adaptation
    assert result.steps == 2 and not result.used and result.loss_after == pytest.approx(result.loss_before)


def test_reconstruct_frames_adapts_as_reconstruct_does(weights):
    kspace, mask = volume(nz=1)
    config = AdaptConfig(steps=2, lr=1e-2, seed=3)
    whole = GenreReconstructor(weights, adapt=config)
    expected = whole.reconstruct(kspace, mask, META)[[1, 4], 0]
    chosen = GenreReconstructor(weights, adapt=config)
    np.testing.assert_allclose(chosen.reconstruct_frames(kspace[:, 0], mask, META, [1, 4]), expected,
                               rtol=1e-5, atol=1e-6)
    assert chosen.last_adaptation.steps == 2
    assert chosen.last_adaptation.loss_before == pytest.approx(whole.last_adaptation.loss_before)


def test_adaptation_steps_change_the_copy_only_and_respect_the_budget(weights):
    kspace, mask = volume(seed=3)
    reconstructor = GenreReconstructor(weights, adapt=AdaptConfig(steps=3, lr=1e-2))
    shipped = {k: v.clone() for k, v in reconstructor.generator.state_dict().items()}
    source = reconstructor._window_source(kspace, torch.from_numpy(mask.astype(np.float32)), META)
    adapted, result = adapt_generator(reconstructor.generator, source, 2, 6, META.num_acs, META.radial,
                                      AdaptConfig(steps=3, lr=1e-2))
    assert result.steps == 3 and result.loss_before > 0
    assert all(torch.equal(v, reconstructor.generator.state_dict()[k]) for k, v in shipped.items())
    if result.used:
        assert adapted is not reconstructor.generator and result.loss_after < result.loss_before
    else:
        assert adapted is reconstructor.generator
    _, timed_out = adapt_generator(reconstructor.generator, source, 2, 6, META.num_acs, META.radial,
                                   AdaptConfig(steps=50, seconds=0.0))
    assert timed_out.steps == 0 and not timed_out.used


def test_predict_cli_and_factory_carry_adaptation(weights):
    args = predict.parse_args(["--adapt", "5", "--adapt-seconds", "30"])
    assert (args.adapt, args.adapt_seconds) == (5, 30.0)
    assert predict.parse_args([]).adapt == 0
    built = build_reconstructor("genre", weights=weights, device="cpu", adapt_steps=5, adapt_seconds=30)
    assert built.adapt == AdaptConfig(steps=5, seconds=30.0)
    assert build_reconstructor("genre", weights=weights, device="cpu").adapt is None
