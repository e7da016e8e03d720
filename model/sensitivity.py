"""Coil sensitivity maps from the ACS region (docs/method.md §2, PromptMR+ ``use_sens_adj``)."""
import torch
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
    channels. The maps are refined by a small NormPromptUnet and normalised per frame and pixel.
    """

    def __init__(self, frames: int, config: UnetConfig):
        super().__init__()
        self.unet = NormPromptUnet(frames, frames, config)

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, num_acs: int, radial: bool) -> torch.Tensor:
        batch, frames, coils, height, width = masked_kspace.shape
        with fp32_region(masked_kspace.device):
            coil_images = ifft2c(extract_acs(masked_kspace.to(torch.complex64), mask, num_acs, radial))
        per_coil = coil_images.transpose(1, 2).reshape(batch * coils, frames, height, width)
        maps, _ = self.unet(per_coil)
        maps = maps.reshape(batch, coils, frames, height, width).transpose(1, 2)
        with fp32_region(masked_kspace.device):
            return normalise_to_unit_rss(maps.to(torch.complex64))
