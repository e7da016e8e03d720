"""Radial (non-Cartesian) sampling: the forward operator and its adjoint as one unit, and the nearest-cell
Cartesian version of a radial acquisition (what a ktRadial-style 2-D mask is to the scanner's spokes).

Convention: the same as model.fftc's centred orthonormal 2-D DFT on an (n, n) grid, evaluated at off-grid
frequencies. A sample at (ky, kx) in cycles per pixel, each in [-0.5, 0.5], of an image x is

    y = (1/n) sum_{r, c} x[r, c] exp(-2 pi i (ky (r - n/2) + kx (c - n/2))),

so a sample that falls on the grid point (ky n, kx n) equals fft2c(x) there. Rows of the image follow ky and
columns kx. The sums are separable per sample, so a dense evaluation costs O(samples n^2) with no
n^2 x samples matrix in memory: exact, and fast enough for the one real radial acquisition (6,400 samples).
"""
from dataclasses import dataclass

import torch


@dataclass
class RadialOperator:
    """y = A x at the sample positions ``ky``, ``kx`` (S,) float, on an (n, n) image grid.

    Shapes: image (..., n, n) complex -> samples (..., S) complex, and back with the adjoint."""
    ky: torch.Tensor
    kx: torch.Tensor
    n: int

    def _phases(self, positions: torch.Tensor) -> torch.Tensor:
        """(S, n) complex: exp(-2 pi i k (index - n/2)) / sqrt(n)."""
        index = torch.arange(self.n, dtype=torch.float64) - self.n // 2
        angle = -2 * torch.pi * positions.to(torch.float64)[:, None] * index[None]
        return (torch.polar(torch.ones_like(angle), angle) / self.n ** 0.5).to(torch.complex128)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x: image (..., n, n) -> samples (..., S)."""
        ey, ex = self._phases(self.ky), self._phases(self.kx)
        rows = torch.einsum("sr,...rc->...sc", ey, image.to(torch.complex128))     # (..., S, n)
        return (rows * ex).sum(-1).to(image.dtype)

    def adjoint(self, samples: torch.Tensor) -> torch.Tensor:
        """A^H y: samples (..., S) -> image (..., n, n)."""
        ey, ex = self._phases(self.ky), self._phases(self.kx)
        weighted = samples.to(torch.complex128)[..., :, None] * ex.conj()          # (..., S, n)
        return torch.einsum("sr,...sc->...rc", ey.conj(), weighted).to(samples.dtype)


def nearest_cartesian(samples: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, n: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (..., S) at (ky, kx) -> (Cartesian k-space (..., n, n), mask (n, n) bool): each sample moved to
    its nearest grid point, samples sharing a point averaged; positions off the grid's band are dropped."""
    rows = torch.round(ky.to(torch.float64) * n).long() + n // 2
    cols = torch.round(kx.to(torch.float64) * n).long() + n // 2
    inside = (rows >= 0) & (rows < n) & (cols >= 0) & (cols < n)
    cell = (rows * n + cols)[inside]
    lead = samples.shape[:-1]
    flat = samples[..., inside].reshape(-1, int(inside.sum()))
    total = torch.zeros(flat.shape[0], n * n, dtype=samples.dtype).index_add_(1, cell, flat)
    count = torch.zeros(n * n, dtype=torch.float64).index_add_(0, cell, torch.ones(len(cell), dtype=torch.float64))
    kspace = (total / count.clamp_min(1).to(total.dtype)).reshape(*lead, n, n)
    return kspace, (count > 0).reshape(n, n)
