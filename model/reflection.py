"""Reflection through the centred-FFT origin: the same index map in image space and in k-space.

With model.fftc the origin of an axis of length N sits at index N // 2 (odd and even N). Reflecting a signal
through it (index N // 2 + n -> N // 2 - n, wrapping for even N) reflects its centred DFT the same way, so a
reconstruction can run on reflected k-space, mask and view-shared k-space and have its image reflected back
(the reflection ensemble of model.inference).

Exactness: Cartesian masks are constant along the readout, so a readout reflection leaves the sampling pattern
and the ACS rows unchanged and only mirrors the anatomy. A phase-encode reflection (and, for ktRadial, the
readout one) changes the pattern and moves an even-sized ACS block by one line against model.acs's fixed
region, so the coil maps are calibrated from one line fewer there. The default ensemble (2) is the readout
reflection for that reason and because it measured best at AF 24 (docs/method-choices.md).
"""
import torch

# the reflection ensembles GenreReconstructor offers: 1 = none, 2 = + readout, 4 = + phase-encode, + both
ENSEMBLES: dict[int, tuple[tuple[int, ...], ...]] = {1: ((),), 2: ((), (-1,)), 4: ((), (-1,), (-2,), (-2, -1))}


def reflect(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """x (..., H, W) reflected through index N // 2 along each of ``dims`` (-1 = W, -2 = H); an involution."""
    for dim in dims:
        x = torch.roll(torch.flip(x, dims=(dim,)), shifts=1 - x.shape[dim] % 2, dims=dim)
    return x
