"""Time-averaged k-space of a slice (view sharing), the first estimate's fill for unmeasured locations."""
import torch


def shared_kspace(masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """masked_kspace (T, C, H, W) complex, mask (T, H, W) {0, 1} -> (C, H, W): at each location the mean of the
    frames that measured it, zero where none did."""
    if masked_kspace.dim() != 4 or mask.shape != (masked_kspace.shape[0], *masked_kspace.shape[-2:]):
        raise ValueError(f"shared_kspace: k-space (T, C, H, W) and mask (T, H, W), got "
                         f"{tuple(masked_kspace.shape)} and {tuple(mask.shape)}")
    mask = mask.to(masked_kspace.real.dtype)
    count = mask.sum(0)
    total = (masked_kspace * mask[:, None]).sum(0)
    return total / count.clamp_min(1)
