"""Test-time adaptation (model.adaptation): the splits, the validation set, early stopping, the fallback rule, the
budget, the plumbing."""
import dataclasses

import numpy as np
import pytest
import torch

import predict
from model.adaptation import AdaptConfig, adapt_generator, holdout_split, training_loss
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


def test_holdout_split_draws_each_frame_of_a_stack_on_its_own():
    mask = torch.stack([cartesian_mask(seed=0)] * 8)             # a time-constant mask
    kept, held = holdout_split(mask, 8, False, 0.4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(kept + held, mask)
    assert held[:, 16:24].sum() == 0
    assert len({tuple(frame.sum(1).tolist()) for frame in held}) > 1


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
    mask_t = torch.from_numpy(mask.astype(np.float32))
    source = reconstructor._window_source(kspace, mask_t, META)
    adapted, result = adapt_generator(reconstructor.generator, source, mask_t, 2, META.num_acs, META.radial,
                                      AdaptConfig(steps=3, lr=1e-2))
    assert result.steps == 3 and result.loss_before > 0
    assert all(torch.equal(v, reconstructor.generator.state_dict()[k]) for k, v in shipped.items())
    if result.used:
        assert adapted is not reconstructor.generator and result.loss_after < result.loss_before
    else:
        assert adapted is reconstructor.generator
    _, timed_out = adapt_generator(reconstructor.generator, source, mask_t, 2, META.num_acs, META.radial,
                                   AdaptConfig(steps=50, seconds=0.0))
    assert timed_out.steps == 0 and not timed_out.used


def test_predict_cli_and_factory_carry_adaptation(weights):
    args = predict.parse_args(["--adapt", "5", "--adapt-seconds", "30"])
    assert (args.adapt, args.adapt_seconds) == (5, 30.0)
    assert predict.parse_args([]).adapt == 0
    built = build_reconstructor("genre", weights=weights, device="cpu", adapt_steps=5, adapt_seconds=30)
    assert built.adapt == AdaptConfig(steps=5, seconds=30.0)
    assert build_reconstructor("genre", weights=weights, device="cpu").adapt is None


def recording(source, calls: list):
    def window(z, t, input_mask):
        calls.append(input_mask)
        return source(z, t, input_mask)
    return window


def test_the_validation_set_is_never_input_and_adaptation_keeps_the_acs(weights):
    kspace, mask = volume(seed=5)
    mask_t = torch.from_numpy(mask.astype(np.float32))
    reconstructor = GenreReconstructor(weights)
    calls = []
    source = recording(reconstructor._window_source(kspace, mask_t, META), calls)
    adapt_generator(reconstructor.generator, source, mask_t, 2, META.num_acs, META.radial,
                    AdaptConfig(steps=4, lr=1e-3, validation=0.3, check_every=2))
    assert len(calls) == 3 + 4                                 # the check windows, then one window per step
    removed = mask_t - calls[0]
    assert all(torch.equal(c, calls[0]) for c in calls)         # one validation set for the whole file
    assert ((removed == 0) | (mask_t == 1)).all() and (removed >= 0).all()
    assert removed[:, 16:24].sum() == 0                         # the ACS lines stay input
    outside = mask_t.sum() - mask_t[:, 16:24].sum()
    assert 0.1 < float(removed.sum() / outside) < 0.5


def test_early_stopping_ends_a_diverging_adaptation_and_keeps_the_shipped_generator(weights):
    kspace, mask = volume(seed=7)
    mask_t = torch.from_numpy(mask.astype(np.float32))
    reconstructor = GenreReconstructor(weights)
    source = reconstructor._window_source(kspace, mask_t, META)
    adapted, result = adapt_generator(reconstructor.generator, source, mask_t, 2, META.num_acs, META.radial,
                                      AdaptConfig(steps=40, lr=10.0, check_every=1, patience=2))
    assert result.steps < 40
    if not result.used:
        assert adapted is reconstructor.generator and result.best_step == 0
    else:
        assert result.loss_after < result.loss_before and 0 < result.best_step <= result.steps


def test_a_non_finite_training_loss_stops_adaptation_before_any_step(weights):
    kspace, mask = volume(seed=9)
    mask_t = torch.from_numpy(mask.astype(np.float32))
    reconstructor = GenreReconstructor(weights)
    source = reconstructor._window_source(kspace, mask_t, META)
    calls = []

    def poisoned(z, t, input_mask):                            # the check windows are clean, training windows not
        calls.append(t)
        window = source(z, t, input_mask)
        if len(calls) > 3:
            window.measured = window.measured * float("nan")
        return window
    adapted, result = adapt_generator(reconstructor.generator, poisoned, mask_t, 2, META.num_acs, META.radial,
                                      AdaptConfig(steps=5, lr=1e-3))
    assert result.steps == 0 and not result.used and adapted is reconstructor.generator


def sparse_volume(extra_rows: int, nt=3, nc=2, ny=40, nx=24):
    """Every frame measures the 8 ACS rows and ``extra_rows`` more (AF 16-like: little to hold back)."""
    rng = np.random.default_rng(11)
    mask = np.zeros((nt, ny, nx), dtype=bool)
    mask[:, 16:24] = True
    for t in range(nt):
        mask[t, rng.choice([r for r in range(ny) if not 16 <= r < 24], extra_rows, replace=False)] = True
    kspace = rng.standard_normal((nt, 1, nc, ny, nx)) + 1j * rng.standard_normal((nt, 1, nc, ny, nx))
    return (kspace * mask[:, None, None]).astype(np.complex64), mask


def test_every_training_step_holds_something_back_and_has_finite_gradients(weights):
    kspace, mask = sparse_volume(extra_rows=1)
    mask_t = torch.from_numpy(mask.astype(np.float32))
    reconstructor = GenreReconstructor(weights)
    window = reconstructor._window_source(kspace, mask_t, META)(0, 1, mask_t)
    generator = reconstructor.generator
    for seed in range(12):          # one line to hold back at 40%: most single draws hold back nothing
        loss = training_loss(generator, window, META.num_acs, META.radial, 0.4, torch.Generator().manual_seed(seed))
        generator.zero_grad(set_to_none=True)
        loss.backward()
        assert loss.item() > 0
        assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
    generator.zero_grad(set_to_none=True)
    acs_only, acs_mask = sparse_volume(extra_rows=0)
    acs_t = torch.from_numpy(acs_mask.astype(np.float32))
    nothing = reconstructor._window_source(acs_only, acs_t, META)(0, 1, acs_t)
    assert training_loss(generator, nothing, META.num_acs, META.radial, 0.4, torch.Generator()) is None
