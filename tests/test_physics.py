"""Physics: centred FFT convention, coil expand/reduce, the SENSE operator's adjointness, ACS geometry."""
import math

import numpy as np
import pytest
import torch

from model.acs import acs_region, extract_acs
from model.coils import normalise_to_unit_rss, rss, sens_expand, sens_reduce
from model.fftc import fft2c, ifft2c
from model.sense import SenseOperator

SIZES = [(16, 20), (15, 21), (16, 21), (15, 20)]
DTYPES = [torch.complex64, torch.complex128]


def random_complex(shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
    return torch.complex(torch.randn(shape, generator=generator, dtype=real_dtype),
                         torch.randn(shape, generator=generator, dtype=real_dtype))


def inner(a, b):
    return (a.conj() * b).sum()


def assert_adjoint(forward_value, y, x, adjoint_value, dtype):
    lhs, rhs = inner(forward_value, y), inner(x, adjoint_value)
    tolerance = 1e-5 if dtype == torch.complex64 else 1e-12
    assert abs(lhs - rhs) <= tolerance * abs(lhs)


def cartesian_mask(frames, ny, nx, seed=0):
    """(F, 1, ny, nx): a different random set of rows per frame, identical along nx."""
    rows = torch.rand(frames, 1, ny, 1, generator=torch.Generator().manual_seed(seed)) < 0.4
    return rows.expand(frames, 1, ny, nx)


def radial_like_mask(frames, ny, nx, seed=0):
    """(F, 1, ny, nx): a genuinely 2-D random pattern per frame."""
    return torch.rand(frames, 1, ny, nx, generator=torch.Generator().manual_seed(seed)) < 0.3


def numpy_ifft2c(kspace):
    axes = (-2, -1)
    n = kspace.shape[-2] * kspace.shape[-1]
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), axes=axes), axes=axes) * math.sqrt(n)


def numpy_fft2c(image):
    axes = (-2, -1)
    n = image.shape[-2] * image.shape[-1]
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), axes=axes), axes=axes) / math.sqrt(n)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fft2c_and_ifft2c_match_matlab_formula(shape, dtype):
    data = random_complex((3, *shape), dtype)
    tolerance = 1e-5 if dtype == torch.complex64 else 1e-12
    np.testing.assert_allclose(ifft2c(data).numpy(), numpy_ifft2c(data.numpy()), rtol=0, atol=tolerance * 10)
    np.testing.assert_allclose(fft2c(data).numpy(), numpy_fft2c(data.numpy()), rtol=0, atol=tolerance * 10)


@pytest.mark.parametrize("shape", SIZES)
def test_centre_sample_is_a_flat_image(shape):
    # MATLAB's centre of an axis of length n is floor(n/2) (0-based): a lone sample there has zero phase
    ny, nx = shape
    kspace = torch.zeros(ny, nx, dtype=torch.complex64)
    kspace[ny // 2, nx // 2] = math.sqrt(ny * nx)
    torch.testing.assert_close(ifft2c(kspace), torch.ones(ny, nx, dtype=torch.complex64))
    torch.testing.assert_close(fft2c(torch.ones(ny, nx, dtype=torch.complex64)), kspace)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trips(shape, dtype):
    data = random_complex((2, 3, *shape), dtype)
    torch.testing.assert_close(ifft2c(fft2c(data)), data)
    torch.testing.assert_close(fft2c(ifft2c(data)), data)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sens_reduce_is_adjoint_of_sens_expand(shape, dtype):
    coils = 4
    image = random_complex((2, *shape), dtype, seed=1)
    sens = random_complex((2, coils, *shape), dtype, seed=2)
    kspace = random_complex((2, coils, *shape), dtype, seed=3)
    assert_adjoint(sens_expand(image, sens), kspace, image, sens_reduce(kspace, sens), dtype)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_kind", [cartesian_mask, radial_like_mask])
@pytest.mark.parametrize("per_frame_maps", [False, True])
def test_sense_operator_adjointness(shape, dtype, mask_kind, per_frame_maps):
    frames, coils = 5, 3
    sens_shape = (frames, coils, *shape) if per_frame_maps else (coils, *shape)
    operator = SenseOperator(sens=random_complex(sens_shape, dtype, seed=4),
                             mask=mask_kind(frames, *shape).to(dtype))
    image = random_complex((frames, *shape), dtype, seed=5)
    kspace = random_complex((frames, coils, *shape), dtype, seed=6)
    assert_adjoint(operator.forward(image), kspace, image, operator.adjoint(kspace), dtype)


@pytest.mark.parametrize("mask_kind", [cartesian_mask, radial_like_mask])
def test_sense_normal_is_the_adjoint_of_the_forward(mask_kind):
    frames, coils, ny, nx = 5, 3, 12, 9
    operator = SenseOperator(sens=random_complex((frames, coils, ny, nx), torch.complex64, seed=2),
                             mask=mask_kind(frames, ny, nx).to(torch.complex64))
    image = random_complex((frames, ny, nx), torch.complex64, seed=3)
    assert torch.equal(operator.normal(image), operator.adjoint(operator.forward(image)))


def test_sense_forward_is_zero_where_unsampled():
    frames, coils, ny, nx = 3, 2, 12, 10
    mask = cartesian_mask(frames, ny, nx)
    operator = SenseOperator(sens=random_complex((coils, ny, nx), torch.complex64),
                             mask=mask.to(torch.complex64))
    kspace = operator.forward(random_complex((frames, ny, nx), torch.complex64, seed=1))
    assert kspace.shape == (frames, coils, ny, nx)
    assert torch.all(kspace[~mask.expand_as(kspace)] == 0)
    assert torch.all(kspace[mask.expand_as(kspace)] != 0)


def test_normalise_to_unit_rss_gives_unit_rss_and_zero_where_no_signal():
    sens = random_complex((2, 6, 9, 11), torch.complex64) * 1e-3
    sens[..., 0, 0] = 0
    unit = normalise_to_unit_rss(sens)
    coil_rss = rss(unit)
    assert torch.all(coil_rss[..., 0, 0] == 0)
    coil_rss[..., 0, 0] = 1
    torch.testing.assert_close(coil_rss, torch.ones_like(coil_rss))


def test_rss_values():
    coils = torch.tensor([[[3 + 0j]], [[0 + 4j]]], dtype=torch.complex64)  # (nc=2, 1, 1)
    assert rss(coils).item() == pytest.approx(5.0)
    assert rss(coils).dtype == torch.float32


def matlab_zpad_rows(length, num_acs):
    """0-based rows MATLAB's zpad centring gives: floor(n/2)+1+ceil(-a/2) ... floor(n/2)+ceil(a/2), 1-based."""
    first = math.floor(length / 2) + 1 + math.ceil(-num_acs / 2)
    last = math.floor(length / 2) + math.ceil(num_acs / 2)
    return list(range(first - 1, last))


@pytest.mark.parametrize("ny, num_acs, expected_first", [
    (64, 16, 24), (63, 16, 23), (65, 16, 24), (64, 15, 25), (63, 15, 24), (246, 24, 111), (204, 20, 92)])
def test_cartesian_acs_rows(ny, num_acs, expected_first):
    nx = 7
    region = acs_region(ny, nx, num_acs, radial=False)
    rows = torch.nonzero(region.all(dim=1)).flatten().tolist()
    assert rows == list(range(expected_first, expected_first + num_acs)) == matlab_zpad_rows(ny, num_acs)
    assert region.sum() == num_acs * nx  # every readout column of those rows, nothing else


@pytest.mark.parametrize("ny, nx", [(64, 96), (63, 95), (64, 95)])
def test_radial_acs_square(ny, nx):
    region = acs_region(ny, nx, 16, radial=True)
    rows = torch.nonzero(region.any(dim=1)).flatten().tolist()
    cols = torch.nonzero(region.any(dim=0)).flatten().tolist()
    assert rows == matlab_zpad_rows(ny, 16)
    assert cols == matlab_zpad_rows(nx, 16)
    assert region.sum() == 16 * 16


def test_acs_larger_than_axis_is_clipped():
    assert acs_region(10, 4, 16, radial=True).all()


def test_extract_acs_keeps_only_sampled_acs():
    frames, coils, ny, nx = 2, 3, 20, 9
    kspace = random_complex((frames, coils, ny, nx), torch.complex64)
    mask = radial_like_mask(frames, ny, nx)
    acs = extract_acs(kspace, mask, num_acs=4, radial=True)
    keep = (acs_region(ny, nx, 4, radial=True) & mask).expand_as(kspace)
    assert torch.equal(acs[keep], kspace[keep])
    assert torch.all(acs[~keep] == 0)
