"""PatchGAN discriminator (pix2pix ``NLayerDiscriminator`` layout) with InstanceNorm for batch size 1.

Input ``(B, 1, H, W)``: the centre-frame magnitude divided by the target volume max (unconditioned: the
trainer never gives it the zero-filled image). Output ``(B, 1, h, w)`` patch logits, ``h = H // 8 - 2`` for H
divisible by 8 (70x70 receptive field at the defaults). Training only: the image does not ship it.
"""
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DiscriminatorConfig:
    ndf: int = 64               # filters of the first conv
    n_layers: int = 3           # stride-2 convs after the first one (pix2pix 'basic' = 3)
    init_std: float = 0.02      # pix2pix normal init


class PatchDiscriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        if config.ndf < 1 or config.n_layers < 1:
            raise ValueError(f"training/discriminator.py: invalid DiscriminatorConfig {config}")
        self.config = config
        kernel, pad = 4, 1
        # InstanceNorm has no affine parameters here (pix2pix 'instance'), so every conv keeps its bias.
        layers: list[nn.Module] = [
            nn.Conv2d(1, config.ndf, kernel, stride=2, padding=pad),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = config.ndf
        for n in range(1, config.n_layers + 1):
            stride = 2 if n < config.n_layers else 1
            out_channels = config.ndf * min(2 ** n, 8)
            layers += [
                nn.Conv2d(channels, out_channels, kernel, stride=stride, padding=pad),
                nn.InstanceNorm2d(out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, kernel, stride=1, padding=pad))
        self.layers = nn.Sequential(*layers)
        self._init_weights(config.init_std)

    def _init_weights(self, std: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 1, H, W) real -> patch logits (B, 1, h, w)."""
        if image.ndim != 4 or image.shape[1] != 1:
            raise ValueError(
                f"training/discriminator.py: expected input (B, 1, H, W), got {tuple(image.shape)}"
            )
        return self.layers(image)
