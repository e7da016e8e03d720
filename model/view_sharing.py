"""Time-averaged k-space of a slice (view sharing), the first estimate's fill for unmeasured locations."""
import torch


def shared_kspace(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """kspace (T, C, H, W) complex, masked or not, mask (T, H, W) {0, 1} -> (C, H, W): at each location the mean
    of the frames that measured it, zero where none did. Accumulated a frame at a time: no (T, C, H, W)
    temporary (a training sample passes a whole release slice, 121 MB, unmasked)."""
    if kspace.dim() != 4 or mask.shape != (kspace.shape[0], *kspace.shape[-2:]):
        raise ValueError(f"shared_kspace: k-space (T, C, H, W) and mask (T, H, W), got "
                         f"{tuple(kspace.shape)} and {tuple(mask.shape)}")
    weights = mask.to(kspace.real.dtype)
    total = kspace[0] * weights[0]
    for frame, weight in zip(kspace[1:], weights[1:]):
        total += frame * weight
    return total / weights.sum(0).clamp_min(1)
