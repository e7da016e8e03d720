"""benchmarks.validation_by_kind's scoring: its variants (reflection ensembles, hard DC) and the zero-filled column on
one toy window."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import validation_by_kind
from benchmarks.validation_by_kind import score, window_size_note, zero_filled_centre
from model.checkpoint import save_generator
from model.config import PRESETS
from training.config import PRESETS as TRAIN_PRESETS
from model.fftc import ifft2c
from model.generator import GenreGenerator, hard_consistent_centre
from model.reflection import ENSEMBLES, reflect
from training import trainer as trainer_module
from training.simulated import SourceSeries
from training.trainer import window_scores

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return GenreGenerator(dataclasses.replace(PRESETS["tiny"], view_sharing=True)).eval()


@pytest.fixture(scope="module")
def sample():
    """A training-like window: (1, F, C, H, W) k-space with a centre-filled random mask, its centre frame's RSS."""
    torch.manual_seed(5)
    frames, coils, ny, nx = 5, 3, 16, 13
    mask = (torch.rand(1, frames, 1, ny, nx) < 0.3).float()
    mask[..., ny // 2 - 4:ny // 2 + 4, :] = 1
    full = torch.randn(1, frames, coils, ny, nx, dtype=torch.complex64)
    target = ifft2c(full[:, 2]).abs().square().sum(dim=1).sqrt()
    return SimpleNamespace(masked_kspace=mask * full, mask=mask, num_acs=8, radial=False,
                           shared_kspace=full.mean(dim=1), target=target, data_range=target.amax())


def passes(generator, sample, dims_list, hard_dc=False):
    """Each reflection's reconstructed centre frame, reflected back."""
    images = []
    with torch.inference_mode():
        for dims in dims_list:
            kspace, mask = reflect(sample.masked_kspace, dims), reflect(sample.mask, dims)
            output = generator(kspace, mask, sample.num_acs, sample.radial, reflect(sample.shared_kspace, dims))
            image = hard_consistent_centre(output, kspace, mask) if hard_dc else output.image
            images.append(reflect(image.float(), dims))
    return images


def assert_scores(got, images, sample):
    for (ssim, psnr), image in zip(got, images, strict=True):
        want_ssim, want_psnr = window_scores(image, sample)
        assert ssim == pytest.approx(want_ssim, abs=1e-5) and psnr == pytest.approx(want_psnr, abs=1e-4)


def test_each_ensemble_averages_its_reflections(generator, sample):
    images = passes(generator, sample, ENSEMBLES[4])
    scores = score(generator, [sample], ensembles=(1, 2, 4))
    assert score(generator, [sample]) == scores[:1]
    assert_scores(scores, [torch.stack(images[:n]).mean(dim=0) for n in (1, 2, 4)], sample)
    assert len({round(p, 4) for _, p in scores}) == 3          # three different images


def test_hard_dc_scores_the_same_passes_with_the_measurements_put_back(generator, sample):
    plain = score(generator, [sample])
    both = score(generator, [sample], hard_dc=True)
    assert both[0] == plain[0] and both[1] != both[0]
    assert_scores(both, passes(generator, sample, [()]) + passes(generator, sample, [()], hard_dc=True), sample)
    pairs = score(generator, [sample], hard_dc=True, ensembles=(1, 2))
    hard = passes(generator, sample, ENSEMBLES[2], hard_dc=True)
    assert pairs[:2] == both
    assert_scores(pairs[3:], [torch.stack(hard).mean(dim=0)], sample)


def test_zero_filled_is_the_reference_when_fully_sampled_and_aliased_when_not(sample):
    torch.manual_seed(6)
    full = torch.randn(1, 5, 3, 16, 13, dtype=torch.complex64)
    target = ifft2c(full[:, 2]).abs().square().sum(dim=1).sqrt()
    complete = SimpleNamespace(masked_kspace=full, target=target, data_range=target.amax())
    assert torch.allclose(zero_filled_centre(complete), target, atol=1e-5)
    assert window_scores(zero_filled_centre(complete), complete)[0] == pytest.approx(1, abs=1e-4)
    image = zero_filled_centre(sample)
    assert image.shape == sample.target.shape
    assert torch.allclose(image, ifft2c(sample.masked_kspace[:, 2]).abs().square().sum(dim=1).sqrt())
    assert window_scores(image, sample)[0] < 0.99                       # the toy mask leaves most lines out


def test_the_report_says_the_windows_are_readout_crops_and_how_wide():
    assert "96-column readout crop" in window_size_note(TRAIN_PRESETS["cpu"])
    assert TRAIN_PRESETS["cpu"].crop_width == 96
    assert window_size_note(dataclasses.replace(TRAIN_PRESETS["cpu"], crop_width=0)).startswith("whole images")


def test_whole_images_draws_uncropped_windows_and_says_so(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    anatomy = [SourceSeries(rng.random((6, 40, 48)).astype(np.float32), centre, f"{centre}_P00{i}/sax1")
               for centre in ("Center001", "Center003") for i in range(1, 4)]
    monkeypatch.setattr(trainer_module, "real_cine_pool", lambda keep: [
        s for s in anatomy if keep(SimpleNamespace(center=s.subject[:9], folder=s.subject.split("/")[0]))])
    monkeypatch.setattr(validation_by_kind, "PRESETS",
                        {"cpu": dataclasses.replace(TRAIN_PRESETS["cpu"], phantoms=1, crop_width=32)})
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], view_sharing=True)
    weights = tmp_path / "tiny.pt"
    save_generator(weights, config, GenreGenerator(config).state_dict(), {"data": "random"})
    widths = {}
    real_windows = validation_by_kind.kind_windows

    def recording(count, config, **kwargs):
        windows = real_windows(count, config, **kwargs)
        widths[config.crop_width] = {w.target.shape[-1] for kind in windows.values() for w in kind}
        return windows
    monkeypatch.setattr(validation_by_kind, "kind_windows", recording)
    for flag, name in (([], "crops.md"), (["--whole-images"], "whole.md")):
        assert validation_by_kind.main(["--weights", str(weights), "--windows", "1", "--out", str(tmp_path / name),
                                        *flag]) == 0
    assert "32-column readout crop" in (tmp_path / "crops.md").read_text()
    assert "whole images at the acquired pixel size" in (tmp_path / "whole.md").read_text()
    assert widths[32] == {32} and max(widths[0]) > 32
