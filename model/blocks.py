"""Building blocks of the prompt-UNet (PromptMR / PromptMR+, docs/method.md §3).

Activation choice: every CAB owns its PReLU (one slope parameter each). Upstream shares a single PReLU module
across all CABs of all cascades through a mutable default argument; a per-block PReLU is the clean port and
changes the parameter count by a few hundred. Convolutions are bias-free except the stride-2 downsampling.
"""
import torch
import torch.nn.functional as F
from torch import nn

REDUCTION = 4


def conv3x3(in_chans: int, out_chans: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=bias)


class ChannelAttention(nn.Module):
    """Squeeze-excitation: global average -> 1x1 C -> C/4 -> ReLU -> 1x1 C/4 -> C -> sigmoid -> scale."""

    def __init__(self, chans: int, reduction: int = REDUCTION):
        super().__init__()
        hidden = max(chans // reduction, 1)
        self.squeeze = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(chans, hidden, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, chans, kernel_size=1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.squeeze(x)


class CAB(nn.Module):
    """Channel-attention block (B, C, H, W) -> same: conv3x3 -> PReLU -> conv3x3 -> attention, plus input."""

    def __init__(self, chans: int):
        super().__init__()
        self.body = nn.Sequential(conv3x3(chans, chans), nn.PReLU(), conv3x3(chans, chans))
        self.attention = ChannelAttention(chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.body(x))


def cab_stack(chans: int, count: int) -> nn.Sequential:
    """``count`` CABs in a row (identity when 0)."""
    return nn.Sequential(*(CAB(chans) for _ in range(count)))


class DownBlock(nn.Module):
    """n CABs at Cin, then a stride-2 conv3x3 Cin -> Cout.

    (B, Cin, H, W) -> (downsampled (B, Cout, H/2, W/2), skip (B, Cin, H, W)).
    """

    def __init__(self, in_chans: int, out_chans: int, n_cab: int):
        super().__init__()
        self.encoder = cab_stack(in_chans, n_cab)
        self.down = nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=2, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.encoder(x)
        return self.down(skip), skip


class SkipBlock(nn.Module):
    """n CABs applied to an encoder feature before it joins the decoder (identity when n = 0)."""

    def __init__(self, chans: int, n_cab: int):
        super().__init__()
        self.body = cab_stack(chans, n_cab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PromptBlock(nn.Module):
    """Input-adaptive prompt (B, Cin, H, W) -> (B, D, H, W).

    The prompt bank P (1, L, D, S, S) is drawn from U[0, 1) once and kept frozen (upstream default
    ``learnable_prompt=False``): it is a persistent buffer, saved in the state dict but never trained. A learned
    Linear(Cin -> L) on the pooled feature, softmaxed over L, mixes the L prompts; the mix is resized
    bilinearly to H x W and passed through a conv3x3.
    """

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, in_chans: int):
        super().__init__()
        self.register_buffer("prompt", torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.selector = nn.Linear(in_chans, prompt_len)
        self.conv = conv3x3(prompt_dim, prompt_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.selector(x.mean(dim=(-2, -1))), dim=1)           # (B, L)
        prompt = (weights[:, :, None, None, None] * self.prompt).sum(dim=1)  # (B, D, S, S)
        prompt = F.interpolate(prompt, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(prompt)


class UpBlock(nn.Module):
    """Decoder step (B, Cin, h, w) + prompt (B, D, h, w) + skip (B, Cout, 2h, 2w) -> (B, Cout, 2h, 2w).

    cat[x, prompt] -> n CABs at Cin + D -> conv1x1 to Cin -> bilinear x2 -> conv1x1 to Cout -> + skip -> CAB.
    """

    def __init__(self, in_chans: int, out_chans: int, prompt_dim: int, n_cab: int):
        super().__init__()
        self.fuse = cab_stack(in_chans + prompt_dim, n_cab)
        self.reduce = nn.Conv2d(in_chans + prompt_dim, in_chans, kernel_size=1, bias=False)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                nn.Conv2d(in_chans, out_chans, kernel_size=1, bias=False))
        self.refine = CAB(out_chans)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(self.fuse(torch.cat([x, prompt], dim=1)))
        return self.refine(self.up(x) + skip)
