"""GenreReconstructor on random tiny weights, the adjacent-frame window and k-space scale normalisation."""
import numpy as np
import pytest
import torch

from challenge.fallback import MethodChain
from model.checkpoint import save_generator
from model.coils import rss
from model.config import PRESETS
from model.fftc import ifft2c
from model.generator import GenreGenerator
from model.inference import GenreReconstructor
from model.normalisation import kspace_scale
from model.reconstruction import Reconstructor, VolumeMeta, WeightsUnavailable, build_reconstructor
from model.window import adjacent_frames

torch.set_num_threads(1)
CINE = VolumeMeta(num_acs=16, radial=False, cyclic=True, name="cine")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "genre_tiny.pt"
    save_generator(path, PRESETS["tiny"], GenreGenerator(PRESETS["tiny"]).state_dict(), {"data": "random"})
    return path


@pytest.fixture(scope="module")
def reconstructor(weights):
    return GenreReconstructor(weights, device="cpu", batch_size=3)


def volume(nt, nz, nc, ny, nx, seed=0):
    rng = np.random.default_rng(seed)
    kspace = (rng.standard_normal((nt, nz, nc, ny, nx)) + 1j * rng.standard_normal((nt, nz, nc, ny, nx)))
    mask = rng.random((nt, ny, nx)) < 0.3
    mask[:, ny // 2 - 8:ny // 2 + 8] = True
    return (kspace * mask[:, None, None]).astype(np.complex64), mask


@pytest.mark.parametrize("shape,meta", [
    ((7, 2, 4, 37, 51), CINE),
    ((1, 1, 4, 24, 33), CINE),
    ((3, 1, 32, 20, 19), VolumeMeta(num_acs=24, radial=False, cyclic=False, name="t2map")),
    ((6, 1, 5, 31, 31), VolumeMeta(num_acs=16, radial=True, cyclic=True, name="radial")),
])
def test_output_shape_and_dtype(reconstructor, shape, meta):
    kspace, mask = volume(*shape)
    out = reconstructor.reconstruct(kspace, mask, meta)
    nt, nz, _, ny, nx = shape
    assert out.shape == (nt, nz, ny, nx) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.max() > 0


def test_is_a_reconstructor_built_by_the_factory(weights):
    built = build_reconstructor("genre", weights=weights, device="cpu", batch_size=2)
    assert isinstance(built, Reconstructor) and built.name == "genre"
    with pytest.raises(WeightsUnavailable):
        build_reconstructor("genre", weights=weights.with_name("missing.pt"), device="cpu")


@pytest.mark.parametrize("factor", [1e-6, 1e3, 0.0])
def test_finite_for_extreme_scales(reconstructor, factor):
    kspace, mask = volume(4, 1, 4, 24, 28)
    out = reconstructor.reconstruct(kspace * np.complex64(factor), mask, CINE)
    assert np.isfinite(out).all()
    if factor == 0.0:
        assert np.all(out == 0)


def test_output_scales_with_kspace(reconstructor):
    kspace, mask = volume(5, 1, 4, 24, 28, seed=1)
    reference = reconstructor.reconstruct(kspace, mask, CINE)
    for factor in (1e-4, 250.0):
        scaled = reconstructor.reconstruct(kspace * np.complex64(factor), mask, CINE)
        np.testing.assert_allclose(scaled / factor, reference, rtol=1e-3, atol=1e-5 * reference.max())


def test_batch_size_does_not_change_frames(weights, reconstructor):
    kspace, mask = volume(5, 1, 4, 20, 22, seed=2)
    one_by_one = GenreReconstructor(weights, device="cpu", batch_size=1).reconstruct(kspace, mask, CINE)
    np.testing.assert_allclose(reconstructor.reconstruct(kspace, mask, CINE), one_by_one, rtol=1e-4, atol=1e-6)


def test_progress_called_once_per_slice(reconstructor):
    kspace, mask = volume(2, 3, 4, 16, 18)
    calls = []
    reconstructor.reconstruct(kspace, mask, CINE, progress=calls.append)
    assert calls == [1, 1, 1]


class _Slices:
    """A stand-in for the run's slices bar (challenge.fallback.AttemptProgress)."""
    def begin_attempt(self): pass
    def abort_attempt(self): pass
    def update(self, slices): pass


def test_out_of_memory_is_left_to_the_run_policy(weights, monkeypatch):
    """GenreReconstructor does not retry by itself; the run's one policy (challenge.fallback) halves its batch
    size, which it uses from then on, until the windows fit."""
    recon = GenreReconstructor(weights, device="cpu", batch_size=8)
    tried = []
    original = GenreReconstructor._run_frames

    def fail_above_two(self, kspace, mask, meta, batch_size, *rest):
        tried.append(batch_size)
        if batch_size > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return original(self, kspace, mask, meta, batch_size, *rest)

    monkeypatch.setattr(GenreReconstructor, "_run_frames", fail_above_two)
    kspace, mask = volume(3, 1, 4, 16, 16)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        recon.reconstruct(kspace, mask, CINE)
    assert tried == [8]
    notes = []
    chain = MethodChain("genre", lambda method: recon, notes)
    image, method, why = chain.reconstruct(kspace, mask, CINE, _Slices(), notes)
    assert method == "genre" and why is None and image.shape == (3, 1, 16, 16)
    assert tried == [8, 8, 4, 2] and recon.batch_size == 2
    assert [note.rsplit(" ", 1)[-1] for note in notes] == ["4", "2"]


@pytest.mark.parametrize("t,nt,cyclic,expected", [
    (0, 12, True, [10, 11, 0, 1, 2]),
    (11, 12, True, [9, 10, 11, 0, 1]),
    (5, 12, False, [3, 4, 5, 6, 7]),
    (0, 9, False, [0, 0, 0, 1, 2]),
    (8, 9, False, [6, 7, 8, 8, 8]),
    (0, 3, True, [2, 2, 0, 1, 1]),
    (1, 3, False, [0, 0, 1, 2, 2]),
    (0, 3, False, [0, 0, 0, 1, 1]),
    (0, 2, True, [1, 1, 0, 1, 1]),
    (0, 1, True, [0, 0, 0, 0, 0]),
    (0, 1, False, [0, 0, 0, 0, 0]),
    (2, 5, True, [0, 1, 2, 3, 4]),
])
def test_adjacent_frames(t, nt, cyclic, expected):
    assert adjacent_frames(t, nt, 5, cyclic) == expected


def test_adjacent_frames_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        adjacent_frames(0, 5, size=4)
    with pytest.raises(ValueError, match="outside"):
        adjacent_frames(5, 5)


def test_kspace_scale_is_the_zero_filled_maximum():
    generator = torch.Generator().manual_seed(0)
    kspace = torch.randn(3, 5, 4, 12, 14, dtype=torch.complex64, generator=generator)
    kspace[1] = 0
    kspace[2, 0, 0, 0, 0] = complex(float("inf"), 0)
    scale = kspace_scale(kspace)
    assert scale.shape == (3,) and scale.dtype == torch.float32
    torch.testing.assert_close(scale[0], rss(ifft2c(kspace[0]), dim=1).max())
    assert scale[1] == 1 and scale[2] == 1
    odd = torch.randn(1, 2, 3, 11, 13, dtype=torch.complex64, generator=generator)   # the centring shifts left out
    torch.testing.assert_close(kspace_scale(odd)[0], rss(ifft2c(odd[0]), dim=1).max())


def test_reconstruct_frames_equals_the_same_frames_of_a_whole_reconstruction(reconstructor):
    kspace, mask = volume(7, 1, 4, 24, 20, seed=5)
    whole = reconstructor.reconstruct(kspace, mask, CINE)[:, 0]
    chosen = [6, 0, 3]
    np.testing.assert_allclose(reconstructor.reconstruct_frames(kspace[:, 0], mask, CINE, chosen), whole[chosen],
                               rtol=1e-5, atol=1e-6)
