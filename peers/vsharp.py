"""DIRECT's vSHARP (Yiasemis et al. 2023, the NKI-AI CMRxRecon submissions) from the authors' ``direct-recon``
package, composed as DIRECT's ``VSharpNetEngine`` composes it for 2-D data:

1. an ACS sensitivity estimate (``EstimateSensitivityMapModule``, root-sum-of-squares of the ACS coil images),
2. DIRECT's sensitivity refinement U-Net (``UnetModel2d``, run on each coil, skipped for one coil) and the
   unit-RSS normalisation of ``MRIModelEngine.compute_sensitivity_map``,
3. ``VSharpNet`` (ADMM with a U-Net per step and gradient-descent data consistency) at the size of DIRECT's
   CMRxRecon configuration (projects/CMRxRecon/configs/base_vsharp_2D.yaml: 16 steps, 14 DC steps, 32-filter
   4-pool U-Nets, an output per step).

One frame at a time (the 2-D model), each frame divided by its zero-filled RSS maximum
(model.normalisation.kspace_scale, GENRE's and the VarNet peer's normalisation) and multiplied back. DIRECT's
``fft2``/``ifft2`` (centred, orthonormal) equal model.fftc's, so k-space goes in as CMRxRecon stores it; DIRECT
does not care which axis is undersampled. The ACS region is the year's (model.acs: ``num_acs`` central ny lines,
or the central square of a ktRadial mask).

Training (peers.train): the engine's loss (the configuration's l1 + SSIM + normalised HFEN-L1 on every step's
image, weighted by logspace(-1, 0), plus 3 x k-space NMAE of the data-consistent output) and its optimiser (Adam,
lr 5e-3, linear warm-up over 2000 iterations, x0.8 every 75000: ``direct.data.lr_scheduler.WarmupMultiStepLR``).

Needs Python >= 3.12 (direct-recon's wheels; docs/peers.md says how to make that environment).
"""
from pathlib import Path

import torch
from direct.data.lr_scheduler import WarmupMultiStepLR
from direct.data.mri_transforms import EstimateSensitivityMapModule, SensitivityMapType
from direct.data.transforms import fft2, ifft2, safe_divide
from direct.functionals import HFENL1Loss, NMAELoss, SSIMLoss
from direct.nn.types import InitType, ModelName
from direct.nn.unet.unet_2d import UnetModel2d
from direct.nn.vsharp.vsharp import VSharpNet
from direct.types import KspaceKey
from torch import nn

from model.acs import extract_acs
from model.normalisation import kspace_scale
from model.reconstruction import VolumeMeta
from peers.base import LearnedPeer

NAME = "vsharp"
# base_vsharp_2D.yaml's model and sensitivity_model sections
HPARAMS = {"num_steps": 16, "num_steps_dc_gd": 14, "image_unet_num_filters": 32, "image_unet_num_pool_layers": 4,
           "initializer_channels": [32, 32, 64, 64], "initializer_dilations": [1, 1, 2, 4],
           "sens_filters": 32, "sens_pools": 4}
# base_vsharp_2D.yaml's training section
LEARNING_RATE = 5e-3
WARMUP_ITERATIONS = 2000
LR_STEP, LR_GAMMA = 75000, 0.8
KSPACE_WEIGHT = 3.0


class VSharpWithMaps(nn.Module):
    """The sensitivity refinement U-Net and vSHARP, trained together as DIRECT's engine trains them."""

    def __init__(self, hparams: dict):
        super().__init__()
        self.sensitivity = UnetModel2d(in_channels=2, out_channels=2, num_filters=hparams["sens_filters"],
                                       num_pool_layers=hparams["sens_pools"], dropout_probability=0.0)
        self.vsharp = VSharpNet(
            fft2, ifft2, num_steps=hparams["num_steps"], num_steps_dc_gd=hparams["num_steps_dc_gd"],
            image_init=InitType.SENSE, no_parameter_sharing=True, image_model_architecture=ModelName.UNET,
            initializer_channels=tuple(hparams["initializer_channels"]),
            initializer_dilations=tuple(hparams["initializer_dilations"]), auxiliary_steps=-1,
            image_unet_num_filters=hparams["image_unet_num_filters"],
            image_unet_num_pool_layers=hparams["image_unet_num_pool_layers"])
        self.estimate = EstimateSensitivityMapModule(kspace_key=KspaceKey.ACS_KSPACE, backward_operator=ifft2,
                                                     type_of_map=SensitivityMapType.RSS_ESTIMATE)

    def maps(self, acs_kspace: torch.Tensor) -> torch.Tensor:
        """ACS k-space (B, C, ny, nx, 2) -> refined unit-RSS maps (B, C, ny, nx, 2)."""
        maps = self.estimate({KspaceKey.ACS_KSPACE: acs_kspace})["sensitivity_map"]
        if maps.shape[1] > 1:               # the engine refines multi-coil maps only
            maps = torch.stack([self.sensitivity(maps[:, c].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
                                for c in range(maps.shape[1])], dim=1)
        norm = torch.sqrt((maps ** 2).sum(-1).sum(1))[:, None, :, :, None]
        return safe_divide(maps, norm)

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor, num_acs: int, radial: bool
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """kspace (B, C, ny, nx) complex, mask (B, ny, nx) -> (every step's image (B, ny, nx) complex, maps
        (B, C, ny, nx, 2), masked k-space (B, C, ny, nx, 2)), in the k-space's scale."""
        mask = mask.bool()
        masked = torch.view_as_real(kspace * mask[:, None])
        acs = torch.view_as_real(extract_acs(kspace, mask[:, None], num_acs, radial))
        maps = self.maps(acs)
        images = self.vsharp(masked_kspace=masked, sensitivity_map=maps, sampling_mask=mask[:, None, :, :, None])
        return [torch.view_as_complex(image.contiguous()) for image in images], maps, masked


def vsharp_images(network: VSharpWithMaps, kspace: torch.Tensor, mask: torch.Tensor, num_acs: int,
                  radial: bool) -> torch.Tensor:
    """kspace (B, C, ny, nx) complex64, mask (B, ny, nx) -> |last step| (B, ny, nx) in the k-space's scale."""
    scale = kspace_scale(kspace[:, None])                        # (B,): zero-filled RSS maximum per frame
    images, _, _ = network(kspace / scale[:, None, None, None], mask, num_acs, radial)
    return images[-1].abs() * scale[:, None, None]


def new_network(hparams: dict) -> VSharpWithMaps:
    return VSharpWithMaps(hparams)


def _centre(sample) -> tuple[torch.Tensor, torch.Tensor, int]:
    centre = sample.masked_kspace.shape[1] // 2
    return sample.masked_kspace[:, centre], sample.mask[:, centre, 0], sample.num_acs or 16


def window_image(network: VSharpWithMaps, sample) -> torch.Tensor:
    """A training.dataset.Sample's centre frame reconstructed -> (1, ny, nx), in the target's scale."""
    kspace, mask, num_acs = _centre(sample)
    return vsharp_images(network, kspace, mask, num_acs, sample.radial)


_SSIM, _HFEN, _NMAE = SSIMLoss(), HFENL1Loss(reduction="mean", norm=True), NMAELoss()


def training_loss(network: VSharpWithMaps, sample) -> torch.Tensor:
    """VSharpNetEngine's loss with base_vsharp_2D.yaml's terms, on the frame's normalised scale."""
    kspace, mask, num_acs = _centre(sample)
    scale = kspace_scale(kspace[:, None])
    images, maps, masked = network(kspace / scale[:, None, None, None], mask, num_acs, sample.radial)
    target = sample.target / scale[:, None, None]                # (1, ny, nx)
    weights = torch.logspace(-1, 0, steps=len(images))
    loss = torch.zeros(())
    for weight, image in zip(weights, images):
        source = image.abs()
        data_range = target.max().reshape(1)
        loss = loss + weight * (nn.functional.l1_loss(source, target)
                                + _SSIM(source[:, None], target[:, None], data_range=data_range)
                                + _HFEN(source[:, None], target[:, None]))
    last = torch.view_as_real(images[-1])[:, None]               # (1, 1, ny, nx, 2)
    predicted = fft2(_expand(last, maps), dim=(2, 3))
    unsampled = (~mask.bool())[:, None, :, :, None]
    output_kspace = masked + predicted * unsampled
    full = torch.view_as_real(sample.full_kspace / scale[:, None, None, None])
    return loss + KSPACE_WEIGHT * _NMAE(output_kspace, full)


def _expand(image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """image (B, 1, ny, nx, 2), maps (B, C, ny, nx, 2) -> coil images (B, C, ny, nx, 2)."""
    return torch.view_as_real(torch.view_as_complex(image.contiguous()) * torch.view_as_complex(maps.contiguous()))


def optimiser(parameters) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=LEARNING_RATE)


def scheduler(optimiser: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """DIRECT's schedule, stepped once per iteration as its trainer does."""
    return WarmupMultiStepLR(optimiser, milestones=list(range(LR_STEP, 10 * LR_STEP, LR_STEP)), gamma=LR_GAMMA,
                             warmup_iterations=WARMUP_ITERATIONS)


class VSharpPeer(LearnedPeer):
    name = NAME

    def new_network(self, hparams: dict) -> torch.nn.Module:
        return new_network(hparams)

    def frame_images(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta) -> torch.Tensor:
        return vsharp_images(self.network, kspace, mask, meta.num_acs, meta.radial)


def build(weights: Path, device="cpu", batch_size: int = 8) -> VSharpPeer:
    return VSharpPeer(weights, device, batch_size)
