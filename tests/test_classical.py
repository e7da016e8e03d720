"""Classical reconstructors (zero-filled, CG-SENSE), the conjugate gradient solver and the factory."""
import numpy as np
import pytest
import torch

from model.classical import CGSense, ZeroFilled, conjugate_gradient, estimate_sensitivities_from_acs
from model.coils import normalise_to_unit_rss, rss
from model.fftc import fft2c
from model.reconstruction import (Reconstructor, ReconstructionInputError, VolumeMeta, WeightsUnavailable,
                                  build_reconstructor, resolve_device)

CARTESIAN = VolumeMeta(num_acs=16, radial=False, cyclic=True, name="sim_cartesian")
RADIAL = VolumeMeta(num_acs=16, radial=True, cyclic=True, name="sim_radial")


def synthetic_maps(coils, ny, nx):
    """(nc, ny, nx) complex64: smooth Gaussian coil profiles around a ring, with smooth phase."""
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    angles = 2 * np.pi * np.arange(coils) / coils
    maps = [np.exp(-((x - 1.2 * np.cos(a)) ** 2 + (y - 1.2 * np.sin(a)) ** 2) / 1.5) * np.exp(1j * (a + 0.3 * x))
            for a in angles]
    return np.stack(maps).astype(np.complex64)


def synthetic_object(frames, ny, nx):
    """(nt, ny, nx) complex: an ellipse with a beating disc, edges softened over ~1 pixel, smooth phase."""
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")

    def soft_inside(level):
        return 0.5 * (1 - np.tanh(level * 30))

    images = []
    for t in range(frames):
        radius = 0.25 + 0.05 * np.sin(2 * np.pi * t / frames)
        body = soft_inside((x / 0.7) ** 2 + (y / 0.8) ** 2 - 1)
        heart = soft_inside(((x - 0.1) ** 2 + (y + 0.1) ** 2) / radius ** 2 - 1)
        images.append((body + 1.5 * heart) * np.exp(0.5j * x))
    return np.stack(images)


def simulate(coils=8, ny=64, nx=96, frames=6, slices=1, radial=False, seed=0):
    """Undersampled k-space (nt, nz, nc, ny, nx), mask (nt, ny, nx), fully sampled RSS (nt, nz, ny, nx)."""
    rng = np.random.default_rng(seed)
    coil_images = synthetic_object(frames, ny, nx)[:, None, None] * synthetic_maps(coils, ny, nx)[None, None]
    coil_images = np.repeat(coil_images, slices, axis=1).astype(np.complex64)
    kspace = fft2c(torch.from_numpy(coil_images)).numpy()
    noise_level = 1e-4 * np.abs(kspace).max()
    kspace = kspace + noise_level * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))
    mask = np.zeros((frames, ny, nx), dtype=bool)
    if radial:
        mask[:] = rng.random((frames, ny, nx)) < 0.2
        mask[:, ny // 2 - 8:ny // 2 + 8, nx // 2 - 8:nx // 2 + 8] = True
    else:
        for t in range(frames):
            mask[t, t % 4::4] = True  # R = 4, shifted every frame (kt-uniform)
        mask[:, ny // 2 - 8:ny // 2 + 8] = True
    full_rss = rss(torch.from_numpy(coil_images)).numpy()
    return (kspace * mask[:, None, None]).astype(np.complex64), mask, full_rss


def nmse(estimate, reference):
    return float(np.sum((estimate - reference) ** 2) / np.sum(reference ** 2))


@pytest.fixture(scope="module")
def cartesian_data():
    torch.set_num_threads(1)
    return simulate()


@pytest.fixture(scope="module")
def cgsense_cartesian(cartesian_data):
    kspace, mask, _ = cartesian_data
    return CGSense().reconstruct(kspace, mask, CARTESIAN)


def test_cgsense_beats_zero_filled(cartesian_data, cgsense_cartesian):
    kspace, mask, full_rss = cartesian_data
    zero_filled_error = nmse(ZeroFilled().reconstruct(kspace, mask, CARTESIAN), full_rss)
    cgsense_error = nmse(cgsense_cartesian, full_rss)
    assert cgsense_error < 0.5 * zero_filled_error
    assert cgsense_error < 0.01


def test_cgsense_beats_zero_filled_on_2d_masks():
    kspace, mask, full_rss = simulate(frames=2, radial=True)
    zero_filled_error = nmse(ZeroFilled().reconstruct(kspace, mask, RADIAL), full_rss)
    cgsense_error = nmse(CGSense().reconstruct(kspace, mask, RADIAL), full_rss)
    assert cgsense_error < 0.5 * zero_filled_error


@pytest.mark.parametrize("reconstructor", [ZeroFilled(), CGSense()], ids=["zerofilled", "cgsense"])
def test_shapes_and_dtypes(cartesian_data, reconstructor):
    kspace, mask, _ = cartesian_data
    image = reconstructor.reconstruct(kspace, mask, CARTESIAN)
    assert isinstance(reconstructor, Reconstructor)
    assert image.shape == (6, 1, 64, 96)
    assert image.dtype == np.float32
    assert np.all(np.isfinite(image)) and np.all(image >= 0)


def test_zero_filled_is_rss_of_inverse_fft(cartesian_data):
    kspace, mask, _ = cartesian_data
    expected = np.sqrt((np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)),
                                                            norm="ortho"), axes=(-2, -1))) ** 2).sum(axis=2))
    np.testing.assert_allclose(ZeroFilled(batch_size=4).reconstruct(kspace, mask, CARTESIAN), expected,
                               rtol=1e-4, atol=1e-4 * expected.max())


def test_frame_batching_does_not_change_the_result(cartesian_data, cgsense_cartesian):
    kspace, mask, _ = cartesian_data
    np.testing.assert_allclose(CGSense(batch_size=4).reconstruct(kspace, mask, CARTESIAN), cgsense_cartesian,
                               rtol=1e-4, atol=1e-5 * cgsense_cartesian.max())


@pytest.mark.parametrize("factor", [1e-6, 1e3])
@pytest.mark.parametrize("reconstructor", [ZeroFilled(), CGSense()], ids=["zerofilled", "cgsense"])
def test_scale_invariance(cartesian_data, reconstructor, factor):
    kspace, mask, _ = cartesian_data
    reference = reconstructor.reconstruct(kspace, mask, CARTESIAN)
    scaled = reconstructor.reconstruct((kspace * factor).astype(np.complex64), mask, CARTESIAN)
    assert np.all(np.isfinite(scaled))
    assert np.abs(scaled / factor - reference).max() <= 1e-3 * reference.max()


@pytest.mark.parametrize("reconstructor", [ZeroFilled(), CGSense()], ids=["zerofilled", "cgsense"])
def test_all_zero_kspace_gives_zeros(reconstructor):
    kspace = np.zeros((2, 1, 4, 32, 24), dtype=np.complex64)
    mask = np.zeros((2, 32, 24), dtype=bool)
    mask[:, 8:24] = True
    image = reconstructor.reconstruct(kspace, mask, CARTESIAN)
    assert image.shape == (2, 1, 32, 24)
    assert np.all(image == 0)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, complex(np.nan, np.inf)])
@pytest.mark.parametrize("reconstructor", [ZeroFilled(), CGSense()], ids=["zerofilled", "cgsense"])
def test_non_finite_input_gives_finite_output(cartesian_data, reconstructor, bad_value):
    kspace, mask, full_rss = cartesian_data
    corrupted = kspace[:2].copy()
    corrupted[0, 0, 3, 32, 40] = bad_value  # in the ACS region, where it would also poison the maps
    corrupted[1, 0, :, 5, :] = bad_value
    image = reconstructor.reconstruct(corrupted, mask[:2], CARTESIAN)
    assert np.all(np.isfinite(image))
    assert nmse(image, full_rss[:2]) < 0.1  # one bad sample must not wreck the slice


@pytest.mark.parametrize("reconstructor", [ZeroFilled(), CGSense()], ids=["zerofilled", "cgsense"])
def test_progress_is_called_once_per_slice(reconstructor):
    kspace, mask, _ = simulate(coils=4, ny=32, nx=24, frames=2, slices=3)
    calls = []
    image = reconstructor.reconstruct(kspace, mask, CARTESIAN, progress=calls.append)
    assert calls == [1, 1, 1]
    assert image.shape == (2, 3, 32, 24)


def test_four_coils_and_one_frame():
    kspace, mask, full_rss = simulate(coils=4, frames=1)
    image = CGSense().reconstruct(kspace, mask, CARTESIAN)
    assert image.shape == (1, 1, 64, 96)
    assert nmse(image, full_rss) < nmse(ZeroFilled().reconstruct(kspace, mask, CARTESIAN), full_rss)


def test_two_dimensional_mask_is_broadcast_over_frames(cartesian_data):
    kspace, mask, _ = cartesian_data
    shared = np.broadcast_to(mask[0], mask.shape)
    masked = (kspace * shared[:, None, None]).astype(np.complex64)
    np.testing.assert_array_equal(CGSense().reconstruct(masked, mask[0], CARTESIAN),
                                  CGSense().reconstruct(masked, shared, CARTESIAN))


def test_mismatched_mask_names_the_volume(cartesian_data):
    kspace, mask, _ = cartesian_data
    with pytest.raises(ReconstructionInputError, match="sim_cartesian"):
        CGSense().reconstruct(kspace, mask[:, :, :-1], CARTESIAN)
    with pytest.raises(ReconstructionInputError, match="sim_cartesian"):
        ZeroFilled().reconstruct(kspace[0], mask, CARTESIAN)


def test_estimated_maps_match_the_true_maps_inside_the_object(cartesian_data):
    kspace, mask, _ = cartesian_data
    maps = estimate_sensitivities_from_acs(torch.from_numpy(kspace[:, 0]), torch.from_numpy(mask).unsqueeze(1),
                                           num_acs=16, radial=False)
    true_maps = normalise_to_unit_rss(torch.from_numpy(synthetic_maps(8, 64, 96)))
    torch.testing.assert_close(rss(maps), torch.ones(64, 96))
    # equal up to a per-pixel phase: |<estimated, true>| over coils is 1
    agreement = (maps.conj() * true_maps).sum(dim=0).abs()
    inside = np.abs(synthetic_object(1, 64, 96)[0]) > 0.9
    assert agreement[torch.from_numpy(inside)].min() > 0.95


def test_conjugate_gradient_solves_batched_hermitian_systems():
    generator = torch.Generator().manual_seed(0)
    size = 6
    factors = torch.randn(3, size, size, generator=generator, dtype=torch.complex128)
    matrices = factors @ factors.conj().transpose(-1, -2) + torch.eye(size, dtype=torch.complex128)
    rhs = torch.randn(3, size, generator=generator, dtype=torch.complex128)
    rhs[1] = 0  # an item that is solved from the start
    solution = conjugate_gradient(lambda v: (matrices @ v.unsqueeze(-1)).squeeze(-1), rhs, iters=50, tol=1e-12)
    torch.testing.assert_close(solution, torch.linalg.solve(matrices, rhs))


def test_build_reconstructor():
    assert isinstance(build_reconstructor("zerofilled", device="cpu"), ZeroFilled)
    cgsense = build_reconstructor("cgsense", device="auto", batch_size=3)
    assert isinstance(cgsense, CGSense) and cgsense.batch_size == 3 and cgsense.name == "cgsense"
    with pytest.raises(ValueError, match="unknown reconstruction method"):
        build_reconstructor("grappa")


def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_genre_without_weights_is_unavailable(tmp_path):
    pytest.importorskip("model.inference", reason="model.inference (GENRE reconstructor) not present yet")
    with pytest.raises(WeightsUnavailable):
        build_reconstructor("genre", weights=tmp_path / "missing.pt", device="cpu")

