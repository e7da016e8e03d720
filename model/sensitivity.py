"""Coil sensitivity maps from the ACS region (docs/method.md §2, PromptMR+ ``use_sens_adj``)."""
import torch
import torch.nn.functional as F
from torch import nn

from model.acs import extract_acs
from model.coils import normalise_to_unit_rss
from model.config import UnetConfig
from model.fftc import ifft2c
from model.normalisation import fp32_region
from model.prompt_unet import NormPromptUnet


class SensitivityNet(nn.Module):
    """(masked k-space (B, F, C, H, W), mask (B, F, 1, H, W)) -> maps (B, F, C, H, W) complex64, unit RSS over C.

    The ACS-only k-space goes to image space; each coil is one UNet item whose F adjacent frames are its
    channels. The maps are refined by a small NormPromptUnet and normalised per frame and pixel. With
    ``downsample`` > 1 the UNet works on an area-downsampled image and its maps are bilinearly upsampled.
    """

    def __init__(self, frames: int, config: UnetConfig, downsample: int = 1):
        super().__init__()
        self.unet = NormPromptUnet(frames, frames, config)
        self.downsample = int(downsample)

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, num_acs: int, radial: bool) -> torch.Tensor:
        batch, frames, coils, height, width = masked_kspace.shape
        with fp32_region(masked_kspace.device):
            coil_images = ifft2c(extract_acs(masked_kspace.to(torch.complex64), mask, num_acs, radial))
        per_coil = coil_images.transpose(1, 2).reshape(batch * coils, frames, height, width)
        if self.downsample > 1:
            small = (-(-height // self.downsample), -(-width // self.downsample))
            maps, _ = self.unet(resample(per_coil, small, "area"))
            maps = resample(maps, (height, width), "bilinear")
        else:
            maps, _ = self.unet(per_coil)
        maps = maps.reshape(batch, coils, frames, height, width).transpose(1, 2)
        with fp32_region(masked_kspace.device):
            return normalise_to_unit_rss(maps.to(torch.complex64))


def resample(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Complex (N, K, H, W) -> (N, K, *size), real and imaginary parts resampled alike."""
    options = {"align_corners": False} if mode == "bilinear" else {}
    return torch.complex(F.interpolate(image.real.float(), size=size, mode=mode, **options),
                         F.interpolate(image.imag.float(), size=size, mode=mode, **options))
