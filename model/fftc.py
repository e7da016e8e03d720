"""Centred orthonormal 2-D FFT over the last two axes.

Matches MATLAB's ``fftshift(ifft2(ifftshift(k))) * sqrt(ny * nx)`` (the CMRxRecon ``ifft2c.m``) for odd and
even sizes: ``ifftshift`` always goes before the transform and ``fftshift`` after it. Reversing the order
(as some challenge helpers do) is off by one pixel on odd axes.
"""
import torch

_DIMS = (-2, -1)


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Image (..., ny, nx) complex -> centred k-space (..., ny, nx) complex."""
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred k-space (..., ny, nx) complex -> image (..., ny, nx) complex."""
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)
