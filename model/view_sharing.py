"""Time-averaged k-space of a slice (view sharing), the first estimate's fill for unmeasured locations."""
import torch


def shared_kspace(masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """masked_kspace (T, C, H, W) complex, mask (T, H, W) {0, 1} -> (C, H, W): at each location the mean of the
    frames that measured it, zero where none did. The k-space must already be zero where its mask is."""
    if masked_kspace.dim() != 4 or mask.shape != (masked_kspace.shape[0], *masked_kspace.shape[-2:]):
        raise ValueError(f"shared_kspace: k-space (T, C, H, W) and mask (T, H, W), got "
                         f"{tuple(masked_kspace.shape)} and {tuple(mask.shape)}")
    count = mask.to(masked_kspace.real.dtype).sum(0)
    return masked_kspace.sum(0) / count.clamp_min(1)
