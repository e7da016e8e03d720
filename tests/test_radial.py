"""The radial forward/adjoint pair (simulation.radial) and the no-reference radial check built on it."""
import numpy as np
import pytest
import torch

from benchmarks import radial_check
from model.fftc import fft2c
from simulation.radial import RadialOperator, nearest_cartesian


def random_complex(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=generator, dtype=torch.float64),
                         torch.randn(*shape, generator=generator, dtype=torch.float64))


def test_radial_operator_adjoint_pair():
    generator = torch.Generator().manual_seed(1)
    ky, kx = torch.rand(40, generator=generator) - 0.5, torch.rand(40, generator=generator) - 0.5
    operator = RadialOperator(ky, kx, 12)
    x, y = random_complex(3, 12, 12, seed=2), random_complex(3, 40, seed=3)
    lhs = (operator.forward(x).conj() * y).sum()
    rhs = (x.conj() * operator.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n", [8, 9])
def test_radial_operator_on_the_grid_is_the_centred_fft(n):
    rows, cols = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    operator = RadialOperator((rows.ravel() - n // 2) / n, (cols.ravel() - n // 2) / n, n)
    image = random_complex(2, n, n, seed=4).to(torch.complex64)
    expected = fft2c(image).reshape(2, -1)
    assert torch.allclose(operator.forward(image), expected, atol=1e-5)


def test_nearest_cartesian_averages_shared_cells_and_drops_outside():
    n = 8
    ky = torch.tensor([0.0, 0.01, 0.25, 0.6])        # the first two share the centre cell; the last is off-grid
    kx = torch.tensor([0.0, -0.01, -0.125, 0.0])
    samples = torch.tensor([[1 + 1j, 3 - 1j, 5j, 7]], dtype=torch.complex64)
    kspace, mask = nearest_cartesian(samples, ky, kx, n)
    assert kspace.shape == (1, n, n) and mask.sum() == 2
    assert kspace[0, 4, 4] == 2 and mask[4, 4]
    assert kspace[0, 6, 3] == 5j and mask[6, 3]


def test_radial_check_measures_prediction_on_held_back_spokes():
    """A synthetic 8-coil object sampled on 25 exact spokes: zero-filled is exactly consistent on the used cells and
    predicts zero on the held-back ones (residual 1); CG-SENSE stays near its data and predicts held-back cells."""
    n, spokes, per_spoke = radial_check.GRID, 25, 256
    angles = torch.arange(spokes) * torch.pi / spokes
    radius = torch.linspace(-0.5, 0.5, per_spoke)
    ky = (radius[None] * torch.sin(angles)[:, None]).ravel()
    kx = (radius[None] * torch.cos(angles)[:, None]).ravel()
    rows, cols = torch.meshgrid(torch.arange(n) - n / 2, torch.arange(n) - n / 2, indexing="ij")
    body = ((rows / 40) ** 2 + (cols / 50) ** 2 < 1).to(torch.complex64)
    centres = [(60 * np.cos(a), 70 * np.sin(a)) for a in np.arange(8) * np.pi / 4]
    coils = torch.stack([torch.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / 3000) for cy, cx in centres])
    operator = RadialOperator(ky, kx, n)
    samples = operator.forward((coils * body).to(torch.complex64))
    held = torch.from_numpy(np.repeat(np.arange(spokes) % radial_check.HOLDOUT_EVERY == 0, per_spoke))
    data = radial_check.RadialData(samples=samples, ky=ky, kx=kx, held=held, spokes=spokes)
    rows_out, images = radial_check.check(data, {})
    by_method = {r.method: r for r in rows_out}
    assert by_method["zero-filled"].used_cells == pytest.approx(0, abs=1e-6)
    assert by_method["zero-filled"].held_cells == pytest.approx(1)
    assert by_method["CG-SENSE"].used_cells < 0.2
    assert by_method["CG-SENSE"].held_cells < 0.8
    assert set(images) == {"zero-filled", "CG-SENSE"} and images["CG-SENSE"].shape == (n, n)
