"""Test-time adaptation: fine-tune a copy of the generator on one file's own measurements before reconstructing it.

Self-supervised with a held-out validation set, as zero-shot SSDU (Yaman et al., ICLR 2022): a fixed share of every
frame's measured locations outside the ACS region (the validation set) is set aside for the whole adaptation: it is
never input and never a training target. At every step the remaining measurements of a window's centre frame are
split at random into a set the network sees (input and data consistency) and a held-back set; the loss is the
normalised L1 + L2 error of the predicted k-space on the held-back set. Every ``check_every`` steps the copy predicts
the validation set of a few fixed windows from the remaining measurements; adaptation stops when that loss has not
improved for ``patience`` checks, and the copy at its lowest validation loss is used only when that loss is below
the shipped generator's, otherwise the file is reconstructed with the shipped weights. A random split renewed at
every step is no check: over many steps every measured location is trained on (measured on one GPU, the held-back
loss of such splits fell while the images got worse; docs/adaptation-eval.md). The adapted copy then reconstructs
with every measurement, the validation set included.
"""
import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from model.acs import acs_region
from model.coils import sens_expand
from model.generator import GenreGenerator
from model.view_sharing import shared_kspace


@dataclass
class Window:
    """One window as inference feeds it, built from an input mask, all on the window's own scale."""
    kspace: torch.Tensor          # (1, F, C, H, W) the window's k-space under the input mask
    mask: torch.Tensor            # (1, F, 1, H, W) the input mask of its frames
    slice_kspace: torch.Tensor    # (nt, C, H, W) the slice's k-space under the input mask (view sharing)
    slice_mask: torch.Tensor      # (nt, H, W)
    centre: int                   # the index of the window's centre frame in the slice
    measured: torch.Tensor        # (C, H, W) the centre frame's k-space under the file's whole mask (the targets)


# (slice z, frame t, input mask (nt, H, W)) -> the Window of frame t of slice z; the caller's window construction,
# so that adaptation sees exactly what inference feeds the network
WindowSource = Callable[[int, int, torch.Tensor], Window]


@dataclass(frozen=True)
class AdaptConfig:
    steps: int                      # at most this many optimiser steps per file
    seconds: float = 120.0          # and at most this much wall time per file (checked between steps)
    lr: float = 1e-5
    holdout: float = 0.4            # share of the centre frame's training measurements held back per step
    validation: float = 0.2         # share of every frame's non-ACS measurements set aside as the validation set
    check_windows: int = 3          # fixed windows whose validation loss picks the copy
    check_every: int = 10           # steps between validation checks
    patience: int = 3               # checks without a new lowest validation loss before stopping
    seed: int = 0


_SPLIT_TRIES = 20


@dataclass
class AdaptResult:
    steps: int
    seconds: float
    loss_before: float              # the validation loss of the shipped generator
    loss_after: float               # the lowest validation loss of the copy (loss_before when it never checked)
    best_step: int                  # the step of the copy kept (0: the shipped generator's loss was not beaten)
    used: bool


def holdout_split(mask: torch.Tensor, num_acs: int, radial: bool, fraction: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """mask (..., H, W) {0, 1} -> (kept, held back), both float of its shape, disjoint, summing to ``mask``.

    Cartesian masks are split by whole phase-encode lines (a readout is measured or not), each frame of a stack on
    its own draw; radial masks by k-space point. The ACS region is always kept (the coil maps are estimated from it)."""
    height, width = mask.shape[-2:]
    acs = acs_region(height, width, num_acs, radial).to(mask.device)
    candidates = (mask > 0) & ~acs
    if radial:
        draw = torch.rand(mask.shape, generator=generator).to(mask.device) < fraction
        held = candidates & draw
    else:
        rows = candidates.any(dim=-1)
        draw = torch.rand(rows.shape, generator=generator).to(mask.device) < fraction
        held = candidates & (rows & draw)[..., None]
    held = held.to(mask.dtype)
    return mask - held, held


def kspace_error(predicted: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Normalised L1 + L2 error of predicted k-space (C, H, W) against ``target`` on the locations ``where`` (H, W)."""
    error = (predicted - target) * where
    reference = target * where
    l2 = error.abs().pow(2).sum().sqrt() / reference.abs().pow(2).sum().sqrt().clamp_min(1e-12)
    l1 = error.abs().sum() / reference.abs().sum().clamp_min(1e-12)
    return l1 + l2


def predicted_kspace(generator: GenreGenerator, window: Window, input_mask: torch.Tensor, slice_mask: torch.Tensor,
                     num_acs: int, radial: bool) -> torch.Tensor:
    """The generator's k-space (C, H, W) of the window's centre frame from the measurements under ``input_mask``
    (1, F, 1, H, W) and, for view sharing, the slice's under ``slice_mask`` (nt, H, W)."""
    shared = None
    if generator.config.view_sharing:
        shared = shared_kspace(window.slice_kspace * slice_mask[:, None], slice_mask)[None]
    output = generator(window.kspace * input_mask, input_mask, num_acs, radial, shared)
    centre = window.kspace.shape[1] // 2
    return sens_expand(output.complex_image[:, centre], output.sens[:, centre])[0]


def training_loss(generator: GenreGenerator, window: Window, num_acs: int, radial: bool, fraction: float,
                  split_generator: torch.Generator) -> torch.Tensor | None:
    """The held-back loss of one random split of the window's centre-frame measurements (SSDU); None when the frame
    has nothing outside the ACS region to hold back."""
    centre = window.kspace.shape[1] // 2
    # an empty held-back set has a zero norm, whose square root has no gradient (NaN weights: seen at AF 16, where
    # a frame has about 10 lines outside the ACS region), so draw again
    for _ in range(_SPLIT_TRIES):
        kept, held = holdout_split(window.mask[0, centre, 0], num_acs, radial, fraction, split_generator)
        if held.any():
            break
    else:
        return None
    input_mask = window.mask.clone()
    input_mask[0, centre, 0] = kept
    slice_mask = window.slice_mask.clone()
    slice_mask[window.centre] = slice_mask[window.centre] - held
    predicted = predicted_kspace(generator, window, input_mask, slice_mask, num_acs, radial)
    return kspace_error(predicted, window.measured, held)


def validation_loss(generator: GenreGenerator, windows: list[Window], validation: torch.Tensor, num_acs: int,
                    radial: bool) -> float:
    """Mean error of the predicted validation locations (``validation`` (nt, H, W)) over fixed windows whose inputs
    hold every other measurement."""
    with torch.inference_mode():
        return float(np.mean([kspace_error(predicted_kspace(generator, w, w.mask, w.slice_mask, num_acs, radial),
                                           w.measured, validation[w.centre]).item() for w in windows]))


def adapt_generator(generator: GenreGenerator, source: WindowSource, mask: torch.Tensor, slices: int, num_acs: int,
                    radial: bool, config: AdaptConfig) -> tuple[GenreGenerator, AdaptResult]:
    """A fine-tuned copy of ``generator`` for one file whose measured locations are ``mask`` (nt, H, W), or
    ``generator`` itself when no copy predicted the validation set better, and what happened."""
    started = time.monotonic()
    frames = mask.shape[0]
    rng = np.random.default_rng(config.seed)
    training_mask, validation = holdout_split(mask, num_acs, radial, config.validation,
                                              torch.Generator().manual_seed(config.seed + 1))
    check = [source(int(rng.integers(slices)), int(rng.integers(frames)), training_mask)
             for _ in range(config.check_windows)]
    before = best = validation_loss(generator, check, validation, num_acs, radial)
    adapted = copy.deepcopy(generator).train()
    best_state, best_step = None, 0
    optimiser = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=config.lr)
    split = torch.Generator().manual_seed(config.seed + 2)
    steps = checks_since_best = 0
    while steps < config.steps and time.monotonic() - started < config.seconds:
        window = source(int(rng.integers(slices)), int(rng.integers(frames)), training_mask)
        loss = training_loss(adapted, window, num_acs, radial, config.holdout, split)
        if loss is None or not torch.isfinite(loss):   # nothing to learn from, or a diverged copy: keep the best
            break
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
        if steps % config.check_every == 0 or steps == config.steps:
            adapted.eval()
            current = validation_loss(adapted, check, validation, num_acs, radial)
            adapted.train()
            if math.isfinite(current) and current < best:
                best, best_step, checks_since_best = current, steps, 0
                best_state = copy.deepcopy(adapted.state_dict())
            else:
                checks_since_best += 1
                if checks_since_best >= config.patience:
                    break
    used = best_state is not None
    if used:
        adapted.load_state_dict(best_state)
    adapted.eval()
    result = AdaptResult(steps=steps, seconds=time.monotonic() - started, loss_before=before, loss_after=best,
                         best_step=best_step, used=used)
    return (adapted if used else generator), result
