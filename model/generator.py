"""The GENRE-CMR generator: sensitivity net + unrolled cascades with gradient-descent data consistency
(model.data_consistency, on model.sense's operator).

Shapes: B batch, F adjacent frames (target in the centre), C coils, H = ny, W = nx. Physics (FFTs, coil
expand/reduce, data consistency) runs in fp32 even under autocast; only the UNets follow the caller's autocast.
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from model.coils import rss, sens_reduce
from model.config import GeneratorConfig, UnetConfig
from model.data_consistency import data_gradient, gradient_step, hard_consistent_image, measured_image
from model.normalisation import fp32_region
from model.prompt_unet import NormPromptUnet, level_channels
from model.sense import SenseOperator
from model.sensitivity import SensitivityNet


@dataclass
class GeneratorOutput:
    image: torch.Tensor                # (B, H, W) real: centre-frame magnitude, RSS over coils of S x
    complex_image: torch.Tensor        # (B, F, H, W) complex: final x for all window frames
    sens: torch.Tensor                 # (B, F, C, H, W) complex, unit RSS over C
    features: list[torch.Tensor]       # per cascade: bottleneck feature (B, Cb, H_pad/8, W'_pad/8) for SDA,
    #                                    W' the readout columns the denoisers see
    cascade_images: list[torch.Tensor]  # per cascade: centre-frame magnitude (B, H, W)


def centre_magnitude(x: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """x (B, F, H, W), sens (B, F, C, H, W) -> RSS over coils of S x at the centre frame, (B, H, W)."""
    centre = x.shape[1] // 2
    with fp32_region(x.device):
        return rss(sens[:, centre] * x[:, centre].unsqueeze(1))


def hard_consistent_centre(output: GeneratorOutput, masked_kspace: torch.Tensor, mask: torch.Tensor
                           ) -> torch.Tensor:
    """``output``'s centre frame with the measurements put back (model.data_consistency.hard_consistent_image):
    masked_kspace (B, F, C, H, W) and mask (B, F, 1, H, W) as the generator saw them -> (B, H, W)."""
    centre = output.complex_image.shape[1] // 2
    with fp32_region(masked_kspace.device):
        return hard_consistent_image(output.complex_image[:, centre], output.sens[:, centre],
                                     masked_kspace[:, centre].to(torch.complex64), mask[:, centre].float())


def central_columns(width: int, fraction: float) -> slice:
    """The centred block of round(fraction * width) readout columns (at least one) that a denoiser sees."""
    kept = min(width, max(1, round(fraction * width)))
    start = width // 2 - kept // 2
    return slice(start, start + kept)


def replace_columns(full: torch.Tensor, columns: slice, block: torch.Tensor) -> torch.Tensor:
    """``full`` (..., W) with its ``columns`` replaced by ``block``; out of place, so autograd sees it."""
    if columns.start == 0 and columns.stop == full.shape[-1]:
        return block
    return torch.cat([full[..., :columns.start], block, full[..., columns.stop:]], dim=-1)


class Cascade(nn.Module):
    """One reconstructor module (method.md §5A): x_next = x - eta (ffx - x0) - D(x, [ffx, latent, x0, ffx - x0]).

    ffx = A^H A x with A = M F S (model.sense.SenseOperator, stepped by model.data_consistency). The denoiser
    maps (1 + n_buffer) F complex channels to as many; group 0 (F channels) is the update and, with the buffer,
    group 2 the next latent. With ``residual`` the cascade owns zero-initialised
    1x1 convs that add the previous cascade's bottleneck, dec3 and dec2 features to its own (method.md §4).
    With readout_fraction < 1 the denoiser sees the central readout columns only; the other columns take the
    data-consistency step alone and keep their latent. With ``gated`` the whole move is scaled by a learned
    scalar: x_next = x + gate (x_next - x), the gate 1 at construction (training.growth sets new cascades' to 0).
    """

    def __init__(self, frames: int, n_buffer: int, config: UnetConfig, residual: bool, eta_init: float,
                 readout_fraction: float = 1.0, gated: bool = False):
        super().__init__()
        self.frames, self.n_buffer, self.readout_fraction = frames, n_buffer, readout_fraction
        groups = 1 + n_buffer
        self.denoiser = NormPromptUnet(groups * frames, groups * frames, config)
        self.eta = nn.Parameter(torch.tensor(float(eta_init)))
        self.residual = nn.ModuleList()
        if residual:
            for chans in level_channels(config):
                conv = nn.Conv2d(chans, chans, kernel_size=1, bias=False)
                nn.init.zeros_(conv.weight)
                self.residual.append(conv)
        self.gate = nn.Parameter(torch.tensor(1.0)) if gated else None

    def forward(self, x: torch.Tensor, x0: torch.Tensor, latent: torch.Tensor, operator: SenseOperator,
                previous: list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """x, x0 = A^H y, latent (B, F, H, W) complex; ``operator`` A of the window; ``previous`` the previous
        cascade's features (None for the first) -> (x_next, latent_next, this cascade's features)."""
        with fp32_region(x.device):
            ffx, gradient = data_gradient(operator, x, x0)
        inputs = [x, ffx, latent, x0, gradient] if self.n_buffer else [x]
        injections = None
        if previous is not None and len(self.residual):
            injections = [conv(feature) for conv, feature in zip(self.residual, previous)]
        columns = central_columns(x.shape[-1], self.readout_fraction)
        out, features = self.denoiser(torch.cat([t[..., columns] for t in inputs], dim=1), injections)
        update = out[:, :self.frames]
        if self.n_buffer:
            latent = replace_columns(latent, columns, out[:, 2 * self.frames:3 * self.frames])
        with fp32_region(x.device):
            x_next = gradient_step(x, gradient, self.eta)
            x_next = replace_columns(x_next, columns, x_next[..., columns] - update)
            if self.gate is not None:
                x_next = x + self.gate * (x_next - x)
        return x_next, latent, features


class GenreGenerator(nn.Module):
    """Masked multi-coil k-space of an F-frame window -> reconstruction of its centre frame (GeneratorOutput)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.sens_net = SensitivityNet(config.adjacent_frames, config.sens, config.sens_downsample)
        # the first cascade has no predecessor, so no residual convs
        self.cascades = nn.ModuleList(
            Cascade(config.adjacent_frames, config.n_buffer, config.denoiser, config.residual and index > 0,
                    config.eta_init, config.denoiser_readout_fraction,
                    config.gated_from is not None and index >= config.gated_from)
            for index in range(config.cascades))
        self.gradient_checkpointing = False  # training switch: recompute each cascade in backward

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, num_acs: int, radial: bool,
                shared_kspace: torch.Tensor | None = None) -> GeneratorOutput:
        """masked_kspace (B, F, C, H, W) complex64, already scale-normalised; mask (B, F, 1, H, W) {0, 1};
        shared_kspace (B, C, H, W): the slice's time-averaged k-space (model.view_sharing, same scale), which
        fills each frame's unmeasured locations in the first estimate when ``config.view_sharing``."""
        if masked_kspace.dim() != 5 or masked_kspace.shape[1] != self.config.adjacent_frames:
            raise ValueError(f"GenreGenerator: k-space must be (B, {self.config.adjacent_frames}, C, H, W), "
                             f"got {tuple(masked_kspace.shape)}")
        with fp32_region(masked_kspace.device):
            masked_kspace = masked_kspace.to(torch.complex64)
            mask = mask.float()
        sens = self.sens_net(masked_kspace, mask, num_acs, radial)
        with fp32_region(masked_kspace.device):
            operator = SenseOperator(sens=sens, mask=mask)
            x0 = measured_image(operator, masked_kspace)    # A^H y: the data-consistency term keeps this
            x = x0
            if self.config.view_sharing:
                if shared_kspace is None:
                    raise ValueError("GenreGenerator: this configuration needs shared_kspace (view_sharing)")
                x = sens_reduce(masked_kspace + (1 - mask) * shared_kspace[:, None].to(torch.complex64), sens)
        latent, previous = x, None
        features, cascade_images = [], []
        for cascade in self.cascades:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x, latent, previous = checkpoint(cascade, x, x0, latent, operator, previous, use_reentrant=False)
            else:
                x, latent, previous = cascade(x, x0, latent, operator, previous)
            features.append(previous[0])
            cascade_images.append(centre_magnitude(x, sens))
        return GeneratorOutput(image=cascade_images[-1], complex_image=x, sens=sens, features=features,
                               cascade_images=cascade_images)


def parameter_counts(generator: nn.Module) -> tuple[int, int]:
    """(trainable, total); total includes the frozen prompt banks, which are buffers."""
    trainable = sum(p.numel() for p in generator.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in generator.parameters() if not p.requires_grad)
    return trainable, trainable + frozen + sum(b.numel() for b in generator.buffers())


def flops_per_output_slice(config: GeneratorConfig, coils: int = 10, height: int = 246, width: int = 512,
                           device: str = "meta") -> int:
    """FLOPs (2 per multiply-add) of one forward pass = one reconstructed frame of one slice.

    Counted by torch's FlopCounterMode (convolutions, matmuls; FFTs and elementwise ops are not counted).
    On the meta device nothing is computed, so even the paper config is counted instantly.
    """
    frames = config.adjacent_frames
    with torch.device(device):
        generator = GenreGenerator(config).eval()
        kspace = torch.randn(1, frames, coils, height, width, dtype=torch.complex64)
        mask = torch.ones(1, frames, 1, height, width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        generator(kspace, mask, num_acs=16, radial=False, shared_kspace=kspace[:, 0])
    return counter.get_total_flops()
