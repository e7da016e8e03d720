"""Numeric safety around the networks: k-space scale normalisation and the fp32 region for the physics.

The networks see k-space divided by ``kspace_scale`` (zero-filled image maximum about 1) so that fp16 autocast
never overflows; the reconstruction is multiplied back by the same number. FFTs, coil expand/reduce and data
consistency run in fp32 inside ``fp32_region`` (cuFFT in half precision takes only power-of-two sizes).
"""
import torch


def fp32_region(device: torch.device):
    """Context that switches autocast off for ``device`` (meta and other devices use the cpu autocast)."""
    return torch.autocast("cuda" if device.type == "cuda" else "cpu", enabled=False)


def kspace_scale(masked_kspace: torch.Tensor) -> torch.Tensor:
    """(B, F, C, H, W) complex -> (B,) float32: max of the zero-filled RSS image over frames and pixels.

    1 where that maximum is 0 or not finite, so that dividing by it is always safe.
    """
    with fp32_region(masked_kspace.device):
        # the centring shifts of ifft2c are left out: a circular shift of the k-space is a unit-modulus phase on
        # the image and the image shift a permutation, so the maximum is the same (for odd sizes too); and the
        # square root is taken of the maximum power only. A training sample's window is 50 MB: this was a third
        # of its preparation time.
        image = torch.fft.ifft2(masked_kspace.to(torch.complex64), dim=(-2, -1), norm="ortho")
        power = (image.real.square() + image.imag.square()).sum(dim=2)                # (B, F, H, W)
        peak = power.flatten(start_dim=1).amax(dim=1).sqrt()
    return torch.where(torch.isfinite(peak) & (peak > 0), peak, torch.ones_like(peak))
