"""The prompt-UNet denoiser (PromptMR / PromptMR+, docs/method.md §3) and its complex-image wrapper.

``PromptUnet`` exposes its three decoder inputs (bottleneck output, dec3 output, dec2 output): the caller may
add a tensor to each (``injections``, GENRE's residual connections across cascades, method.md §4) and gets
them back after the addition (the bottleneck one is the SDA feature).
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.blocks import DownBlock, PromptBlock, SkipBlock, UpBlock, cab_stack, conv3x3
from model.config import UnetConfig

LEVELS = 3
PAD_MULTIPLE = 2 ** LEVELS
NORM_EPS = 1e-6  # keeps a constant input finite; de-normalising by the bare std maps it back exactly


def level_channels(config: UnetConfig) -> tuple[int, int, int]:
    """Channels of the three exposed features: bottleneck, dec3 output, dec2 output."""
    return config.feature_dim[2], config.feature_dim[1], config.feature_dim[0]


class PromptUnet(nn.Module):
    """(B, in_chans, H, W) real, H and W multiples of 8 -> ((B, out_chans, H, W), [bottleneck, dec3, dec2]).

    Exposed features: bottleneck (B, fd[2], H/8, W/8), dec3 output (B, fd[1], H/4, W/4), dec2 output
    (B, fd[0], H/2, W/2), each after its injection was added.
    """

    def __init__(self, in_chans: int, out_chans: int, config: UnetConfig):
        super().__init__()
        c0, (c1, c2, c3), pd = config.n_feat0, config.feature_dim, config.prompt_dim
        self.stem = conv3x3(in_chans, c0)
        self.enc1 = DownBlock(c0, c1, config.n_enc_cab[0])
        self.enc2 = DownBlock(c1, c2, config.n_enc_cab[1])
        self.enc3 = DownBlock(c2, c3, config.n_enc_cab[2])
        self.skip1 = SkipBlock(c0, config.n_skip_cab[0])
        self.skip2 = SkipBlock(c1, config.n_skip_cab[1])
        self.skip3 = SkipBlock(c2, config.n_skip_cab[2])
        self.bottleneck = cab_stack(c3, config.n_bottleneck_cab)
        self.prompt3 = PromptBlock(pd[2], config.prompt_len[2], config.prompt_size[2], c3)
        self.dec3 = UpBlock(c3, c2, pd[2], config.n_dec_cab[2])
        self.prompt2 = PromptBlock(pd[1], config.prompt_len[1], config.prompt_size[1], c2)
        self.dec2 = UpBlock(c2, c1, pd[1], config.n_dec_cab[1])
        self.prompt1 = PromptBlock(pd[0], config.prompt_len[0], config.prompt_size[0], c1)
        self.dec1 = UpBlock(c1, c0, pd[0], config.n_dec_cab[0])
        self.head = nn.Conv2d(c0, out_chans, kernel_size=5, padding=2, bias=False)

    def forward(self, x: torch.Tensor, injections: Sequence[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, enc1 = self.enc1(self.stem(x))
        x, enc2 = self.enc2(x)
        x, enc3 = self.enc3(x)
        features = []

        def expose(level: int, feature: torch.Tensor) -> torch.Tensor:
            if injections is not None:
                feature = feature + injections[level]
            features.append(feature)
            return feature

        x = expose(0, self.bottleneck(x))
        x = expose(1, self.dec3(x, self.prompt3(x), self.skip3(enc3)))
        x = expose(2, self.dec2(x, self.prompt2(x), self.skip2(enc2)))
        x = self.dec1(x, self.prompt1(x), self.skip1(enc1))
        return self.head(x), features


class NormPromptUnet(nn.Module):
    """Complex (B, N, H, W) -> complex (B, N_out, H, W) through a PromptUnet, any H and W.

    Real channels are all real parts then all imaginary parts (upstream order). Each sample is normalised by
    one mean and one (unbiased) std over all channels and pixels, zero-padded to multiples of 8, and
    de-normalised after the crop (so an all-zero input gives an all-zero output). The UNet runs in whatever
    autocast the caller set; the output is complex64.
    """

    def __init__(self, in_complex: int, out_complex: int, config: UnetConfig):
        super().__init__()
        self.unet = PromptUnet(2 * in_complex, 2 * out_complex, config)

    def forward(self, image: torch.Tensor, injections: Sequence[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.cat([image.real, image.imag], dim=1).float()
        batch = x.shape[0]
        flat = x.reshape(batch, -1)
        mean = flat.mean(dim=1).view(batch, 1, 1, 1)
        std = flat.std(dim=1).view(batch, 1, 1, 1)
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % PAD_MULTIPLE, -width % PAD_MULTIPLE
        top, left = pad_h // 2, pad_w // 2
        x = F.pad((x - mean) / (std + NORM_EPS), (left, pad_w - left, top, pad_h - top))
        out, features = self.unet(x, injections)
        out = out[..., top:top + height, left:left + width].float() * std + mean
        real, imag = out.chunk(2, dim=1)
        return torch.complex(real, imag), features

