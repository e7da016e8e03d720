"""The auto-calibration (ACS) region: the fully sampled centre of k-space that calibrates coil maps.

Centring follows MATLAB ``zpad`` (used by the organisers' mask generators; model.matlab.centred_start): the first
of ``num_acs`` central lines of an axis of length ``n`` is ``floor(n/2) + ceil(-num_acs/2)`` (0-based).
Cartesian masks: ``num_acs`` central rows of ny, every nx column. ktRadial masks: a ``num_acs x num_acs``
central square, the same rule on both axes.
"""
import torch

from model.matlab import centred_start

DEFAULT_NUM_ACS = 16  # 2024; 2023 uses 24, 2025 uses 20 (challenge.rules knows which)


def central_range(length: int, num_acs: int) -> range:
    """0-based indices of the ``num_acs`` central lines of an axis of ``length`` (clipped to the axis)."""
    start = centred_start(length, num_acs)
    return range(max(start, 0), min(start + num_acs, length))


def acs_region(ny: int, nx: int, num_acs: int = DEFAULT_NUM_ACS, radial: bool = False) -> torch.Tensor:
    """Bool (ny, nx): True inside the ACS region."""
    if num_acs < 1:
        raise ValueError(f"num_acs must be >= 1, got {num_acs}")
    rows = central_range(ny, num_acs)
    cols = central_range(nx, num_acs) if radial else range(nx)
    region = torch.zeros(ny, nx, dtype=torch.bool)
    region[rows.start:rows.stop, cols.start:cols.stop] = True
    return region


def extract_acs(kspace: torch.Tensor, mask: torch.Tensor, num_acs: int = DEFAULT_NUM_ACS,
                radial: bool = False) -> torch.Tensor:
    """k-space (..., ny, nx) -> the same shape, zero outside the ACS region and where ``mask`` is 0.

    ``mask`` is broadcastable to ``kspace`` (e.g. (F, 1, ny, nx) for k-space (F, C, ny, nx)).
    """
    region = acs_region(kspace.shape[-2], kspace.shape[-1], num_acs, radial).to(kspace.device)
    return kspace * (region & mask.to(kspace.device, torch.bool))
