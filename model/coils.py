"""Coil expand/reduce with sensitivity maps, and root-sum-of-squares.

Shapes: image ``(..., ny, nx)``, coil data and maps ``(..., nc, ny, nx)``; the coil axis is ``-3``.
"""
import torch

from model.fftc import fft2c, ifft2c

COIL_DIM = -3


def sens_expand(image: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """Image (..., ny, nx) -> coil k-space (..., nc, ny, nx): F(S x)."""
    return fft2c(sens * image.unsqueeze(COIL_DIM))


def sens_reduce(kspace: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """Coil k-space (..., nc, ny, nx) -> image (..., ny, nx): sum_c conj(S_c) F^H k_c (adjoint of sens_expand)."""
    return (sens.conj() * ifft2c(kspace)).sum(dim=COIL_DIM)


def rss(coil_images: torch.Tensor, dim: int = COIL_DIM) -> torch.Tensor:
    """Root-sum-of-squares magnitude over the coil axis; real output."""
    return torch.sqrt((coil_images.abs() ** 2).sum(dim=dim))


def normalise_to_unit_rss(sens: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale maps (..., nc, ny, nx) so that their RSS over coils is 1 at every pixel (0 where all are 0)."""
    return sens / (rss(sens).unsqueeze(COIL_DIM) + eps)
