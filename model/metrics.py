"""Image quality of tensors during training and evaluation: PSNR.

The organisers' metrics (normalisation per year, SSIM window, the scorer's PSNR in float64 numpy) are
challenge.scoring's; this one is the training loop's validation number and the benchmarks' per-window one.
"""
import torch


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor) -> float:
    """PSNR in dB of ``pred`` against ``target`` (same shape, real) over the peak ``data_range`` (one value);
    identical images give a large finite number (the MSE is clamped at 1e-20)."""
    mse = torch.mean((pred - target) ** 2)
    return float(10 * torch.log10(data_range.reshape(()) ** 2 / mse.clamp_min(1e-20)))
