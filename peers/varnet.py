"""fastMRI's end-to-end variational network (Sriram et al., MICCAI 2020) from the authors' ``fastmri`` package.

One frame at a time, as published (no temporal window): each frame's masked k-space is divided by its zero-filled
RSS maximum (model.normalisation.kspace_scale, GENRE's own normalisation), reconstructed, and the RSS image
multiplied back. fastMRI undersamples its last spatial axis and keeps complex numbers in a trailing axis of two;
CMRxRecon undersamples ny, so ny and nx are swapped on the way in and back on the way out (the centred
orthonormal FFTs of fastmri and model.fftc agree, odd sizes included). The ACS count goes in as fastMRI's
``num_low_frequencies``: its sensitivity network keeps that many central ny lines (on odd ny fastMRI's centre lies
one line above MATLAB's ``zpad`` centre; the network is trained with the same convention it runs with).
Training (peers.train): fastMRI's own loss (fastmri.SSIMLoss) and optimiser settings (Adam, lr 3e-4).
"""
from pathlib import Path

import torch
from fastmri import SSIMLoss
from fastmri.models import VarNet

from model.normalisation import kspace_scale
from model.reconstruction import VolumeMeta
from peers.base import LearnedPeer

NAME = "varnet"
# fastmri.models.VarNet's defaults: the published E2E-VarNet
HPARAMS = {"num_cascades": 12, "sens_chans": 8, "sens_pools": 4, "chans": 18, "pools": 4}
LEARNING_RATE = 3e-4          # fastmri.pl_modules.VarNetModule's default; no weight decay, no clipping


def to_fastmri(kspace: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """kspace (B, C, ny, nx) complex, mask (B, ny, nx) -> masked k-space (B, C, nx, ny, 2) real and mask
    (B, 1, nx, ny, 1) bool: fastMRI's layout, its undersampled axis last."""
    mask = mask.bool()
    masked = (kspace * mask[:, None]).transpose(-2, -1).contiguous()
    return torch.view_as_real(masked), mask.transpose(-2, -1)[:, None, :, :, None]


def varnet_images(network: VarNet, kspace: torch.Tensor, mask: torch.Tensor, num_acs: int) -> torch.Tensor:
    """kspace (B, C, ny, nx) complex64, mask (B, ny, nx) -> RSS magnitude (B, ny, nx) in the k-space's scale."""
    scale = kspace_scale(kspace[:, None])                        # (B,): zero-filled RSS maximum per frame
    masked, fastmri_mask = to_fastmri(kspace / scale[:, None, None, None], mask)
    image = network(masked, fastmri_mask, num_acs)               # (B, nx, ny)
    return image.transpose(-2, -1) * scale[:, None, None]


def new_network(hparams: dict) -> VarNet:
    return VarNet(**hparams)


def window_image(network: VarNet, sample) -> torch.Tensor:
    """A training.dataset.Sample's centre frame reconstructed -> (1, ny, nx), in the target's scale."""
    centre = sample.masked_kspace.shape[1] // 2
    return varnet_images(network, sample.masked_kspace[:, centre], sample.mask[:, centre, 0],
                         sample.num_acs or 16)


_SSIM = SSIMLoss()


def training_loss(network: VarNet, sample) -> torch.Tensor:
    """fastMRI's training loss: 1 - SSIM (7 x 7 window) against the fully sampled RSS, the volume's range."""
    image = window_image(network, sample)
    return _SSIM.to(image.device)(image[:, None], sample.target[:, None], sample.data_range)


def optimiser(parameters) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=LEARNING_RATE)


class VarNetPeer(LearnedPeer):
    name = NAME

    def new_network(self, hparams: dict) -> torch.nn.Module:
        return new_network(hparams)

    def frame_images(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta) -> torch.Tensor:
        return varnet_images(self.network, kspace, mask, meta.num_acs)


def build(weights: Path, device="cpu", batch_size: int = 8) -> VarNetPeer:
    return VarNetPeer(weights, device, batch_size)
