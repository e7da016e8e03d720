"""Test-time adaptation: fine-tune a copy of the generator on one file's own measurements before reconstructing it.

Self-supervised as in SSDU (Yaman et al., MRM 2020): at every step the measured locations of a window's centre
frame outside the ACS region are split at random into a set the network sees (input and data consistency) and
a held-back set; the loss is the normalised L1 + L2 error of the predicted k-space on the held-back set. The
slice's time-averaged k-space (view sharing) is recomputed without the held-back samples, so nothing held back
reaches the input. Before and after, the held-back loss of a fixed set of windows and splits is measured; the
adapted copy is used only when that loss fell, otherwise the file is reconstructed with the shipped weights.
"""
import copy
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from model.acs import acs_region
from model.coils import sens_expand
from model.generator import GenreGenerator
from model.view_sharing import shared_kspace

# (slice z, frame t) -> (masked k-space (1, F, C, H, W), mask (1, F, 1, H, W), the slice's
# masked k-space (nt, C, H, W), its mask (nt, H, W), the index of the centre frame in the slice), all on one
# scale; the caller's window construction, so that adaptation sees exactly what inference feeds the network
WindowSource = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]]


@dataclass(frozen=True)
class AdaptConfig:
    steps: int                      # at most this many optimiser steps per file
    seconds: float = 120.0          # and at most this much wall time per file (checked between steps)
    lr: float = 1e-5
    holdout: float = 0.4            # share of the centre frame's non-ACS measurements held back per step
    check_windows: int = 3          # fixed windows whose held-back loss decides whether to keep the copy
    seed: int = 0


@dataclass
class AdaptResult:
    steps: int
    seconds: float
    loss_before: float
    loss_after: float
    used: bool


def holdout_split(mask: torch.Tensor, num_acs: int, radial: bool, fraction: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """mask (H, W) {0, 1} of one frame -> (kept, held back), both (H, W) float, disjoint, summing to ``mask``.

    Cartesian masks are split by whole phase-encode lines (a readout is measured or not); radial masks by
    k-space point. The ACS region is always kept (the coil maps are estimated from it)."""
    height, width = mask.shape
    acs = acs_region(height, width, num_acs, radial).to(mask.device)
    candidates = (mask > 0) & ~acs
    if radial:
        draw = torch.rand(height, width, generator=generator).to(mask.device) < fraction
        held = candidates & draw
    else:
        rows = candidates.any(dim=1)
        draw = torch.rand(height, generator=generator).to(mask.device) < fraction
        held = candidates & (rows & draw)[:, None]
    held = held.to(mask.dtype)
    return mask - held, held


def heldout_loss(generator: GenreGenerator, window: tuple, num_acs: int, radial: bool, fraction: float,
                 split_generator: torch.Generator) -> torch.Tensor:
    """Normalised L1 + L2 k-space error on a random held-back set of one window's centre frame."""
    kspace, mask, slice_kspace, slice_mask, centre_frame = window
    frames = kspace.shape[1]
    centre = frames // 2
    kept, held = holdout_split(mask[0, centre, 0], num_acs, radial, fraction, split_generator)
    input_mask = mask.clone()
    input_mask[0, centre, 0] = kept
    input_kspace = kspace * input_mask
    shared = None
    if generator.config.view_sharing:
        reduced_mask = slice_mask.clone()
        reduced_mask[centre_frame] = reduced_mask[centre_frame] - held
        shared = shared_kspace(slice_kspace * reduced_mask[:, None], reduced_mask)[None]
    output = generator(input_kspace, input_mask, num_acs, radial, shared)
    predicted = sens_expand(output.complex_image[:, centre], output.sens[:, centre])      # (1, C, H, W)
    target = kspace[:, centre] * held
    error = (predicted * held - target)
    l2 = error.abs().pow(2).sum().sqrt() / target.abs().pow(2).sum().sqrt().clamp_min(1e-12)
    l1 = error.abs().sum() / target.abs().sum().clamp_min(1e-12)
    return l1 + l2


def adapt_generator(generator: GenreGenerator, source: WindowSource, slices: int, frames: int, num_acs: int,
                    radial: bool, config: AdaptConfig) -> tuple[GenreGenerator, AdaptResult]:
    """A fine-tuned copy of ``generator`` for one file (or ``generator`` itself when adapting did not lower the
    held-back loss of the check windows), and what happened."""
    started = time.monotonic()
    rng = np.random.default_rng(config.seed)
    check = [(int(rng.integers(slices)), int(rng.integers(frames))) for _ in range(config.check_windows)]

    def check_loss(model: GenreGenerator) -> float:
        split = torch.Generator().manual_seed(config.seed + 1)      # the same splits before and after
        with torch.inference_mode():
            return float(np.mean([heldout_loss(model, source(z, t), num_acs, radial, config.holdout, split).item()
                                  for z, t in check]))

    before = check_loss(generator)
    adapted = copy.deepcopy(generator).train()
    optimiser = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=config.lr)
    split = torch.Generator().manual_seed(config.seed + 2)
    steps = 0
    while steps < config.steps and time.monotonic() - started < config.seconds:
        window = source(int(rng.integers(slices)), int(rng.integers(frames)))
        loss = heldout_loss(adapted, window, num_acs, radial, config.holdout, split)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
    adapted.eval()
    after = check_loss(adapted) if steps else before
    used = steps > 0 and after < before
    result = AdaptResult(steps=steps, seconds=time.monotonic() - started, loss_before=before, loss_after=after,
                         used=used)
    return (adapted if used else generator), result
