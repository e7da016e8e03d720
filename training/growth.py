"""Grow a trained generator: deeper (cascades appended as copies of its last one) or wider (more denoiser
channels, the new ones starting with no say in the output).

An unrolled network's cascades are successive refinements with the same interface, so a copy of the last
cascade is a trained refinement from its first step on; training the deeper network then continues from the
shallower one's weights instead of from random ones (docs/method-choices.md). Where the deeper generator gates
its cascades (model.config ``gated_from``) the copies come with their gates shut (0): its output is the shallower
one's exactly, and training opens each gate as far as its cascade helps. Widening zero-initialises every weight from
a new channel into an old one, so the wider generator is the narrower one's function at step 0 and its extra
capacity grows from there (docs/gpu.md, "A wider generator").
"""
import dataclasses

import torch

from model.blocks import REDUCTION
from model.config import UnetConfig
from model.prompt_unet import level_channels


def deepened_state(state: dict[str, torch.Tensor], source_cascades: int, target_cascades: int,
                   gated_from: int | None = None) -> dict[str, torch.Tensor]:
    """A GenreGenerator state dict with ``source_cascades`` cascades -> one with ``target_cascades``:
    cascades source_cascades .. target_cascades - 1 are copies of cascade source_cascades - 1. The copies at
    ``gated_from`` (the target's model.config field) and after carry a shut gate (0), the others none."""
    if not 1 <= source_cascades <= target_cascades:
        raise ValueError(f"cannot deepen {source_cascades} cascades to {target_cascades}")
    last = f"cascades.{source_cascades - 1}."
    deeper = dict(state)
    for index in range(source_cascades, target_cascades):
        for key, value in state.items():
            if key.startswith(last) and key != last + "gate":
                deeper[f"cascades.{index}.{key[len(last):]}"] = value.clone()
        if gated_from is not None and index >= gated_from:
            deeper[f"cascades.{index}.gate"] = torch.zeros(())
    return deeper


# A channel layout: the segments of one tensor dimension, each (source width, target width). Concatenated
# features (the decoder's [x, prompt]) are two segments, so a source channel keeps its segment when both widen.
Layout = tuple[tuple[int, int], ...]


def _unet_layouts(source: UnetConfig, target: UnetConfig
                  ) -> tuple[dict[str, tuple[Layout | None, ...]], dict[str, Layout]]:
    """Inside a PromptUnet: per parameter name, the layout of each widened dimension (None: a fixed one); and per
    CAB stack (a name prefix), the layout of the feature its CABs carry (model.blocks.cab_stack)."""
    c = [((source.n_feat0, target.n_feat0),)] + [((s, t),) for s, t in zip(source.feature_dim, target.feature_dim)]
    p = [((s, t),) for s, t in zip(source.prompt_dim, target.prompt_dim)]
    params: dict[str, tuple[Layout | None, ...]] = {"stem.weight": (c[0], None), "head.weight": (None, c[0])}
    stacks: dict[str, Layout] = {"bottleneck.": c[3]}
    for level in (1, 2, 3):
        fused = c[level] + p[level - 1]
        params[f"enc{level}.down.weight"] = (c[level], c[level - 1])
        params[f"enc{level}.down.bias"] = (c[level],)
        params[f"prompt{level}.prompt"] = (None, None, p[level - 1])
        params[f"prompt{level}.selector.weight"] = (None, c[level])
        params[f"prompt{level}.selector.bias"] = ()
        params[f"prompt{level}.conv.weight"] = (p[level - 1], p[level - 1])
        params[f"dec{level}.reduce.weight"] = (c[level], fused)
        params[f"dec{level}.up.1.weight"] = (c[level - 1], c[level])
        stacks[f"enc{level}.encoder."] = c[level - 1]
        stacks[f"skip{level}."] = c[level - 1]
        stacks[f"dec{level}.fuse."] = fused
        stacks[f"dec{level}.refine."] = c[level - 1]
    return params, stacks


def _cab_layouts(rest: str, feature: Layout) -> tuple[Layout | None, ...]:
    """A CAB's parameter (name after the CAB's index) given its feature layout: convs feature -> feature, the
    squeeze-excitation feature -> hidden -> feature with hidden = max(C // 4, 1) (model.blocks.REDUCTION)."""
    hidden = ((max(sum(s for s, _ in feature) // REDUCTION, 1), max(sum(t for _, t in feature) // REDUCTION, 1)),)
    if rest.endswith("body.1.weight"):          # the PReLU's one slope
        return ()
    if rest.endswith("attention.squeeze.1.weight"):
        return (hidden, feature)
    if rest.endswith("attention.squeeze.3.weight"):
        return (feature, hidden)
    return (feature, feature)


def _source_index(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a layout's source channels sit among its target channels, and which target channels are new."""
    kept, start = [], 0
    for source, target in layout:
        kept.append(torch.arange(start, start + source))
        start += target
    kept = torch.cat(kept)
    new = torch.ones(start, dtype=torch.bool)
    new[kept] = False
    return kept, new.nonzero().flatten()


def _widen(value: torch.Tensor, fresh: torch.Tensor, dims: tuple[Layout | None, ...]) -> torch.Tensor:
    """The source tensor in its place inside the target's fresh one; a weight's (out, in) block that takes new
    inputs into source outputs is zeroed, so the source outputs are what they were."""
    out = fresh.clone()
    kept_new = [_source_index(layout) if layout is not None else (torch.arange(size), None)
                for layout, size in zip(dims, fresh.shape)]
    index = [kept for kept, _ in kept_new] + [torch.arange(size) for size in fresh.shape[len(dims):]]
    out[torch.meshgrid(*index, indexing="ij")] = value
    if len(dims) >= 2 and dims[1] is not None:
        new_inputs = kept_new[1][1]
        out[index[0][:, None], new_inputs[None, :]] = 0
    return out


def widened_state(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], source: UnetConfig,
                  target: UnetConfig) -> dict[str, torch.Tensor]:
    """A GenreGenerator state dict whose denoisers have ``source`` widths -> one with ``target`` widths (each
    at least the source's; everything else equal), computing exactly what it computed before.

    ``fresh`` is a target-width generator's own state dict: the new channels keep its initialisation. Every
    weight from a new channel into a source channel starts at zero, so the source channels, and with them the
    output, are unchanged, while those zeros still get gradients from the first step (the new channels carry
    non-zero features) and training grows them. The sensitivity network and the scalars are copied."""
    if dataclasses.replace(source, n_feat0=target.n_feat0, feature_dim=target.feature_dim,
                           prompt_dim=target.prompt_dim) != target:
        raise ValueError("only the denoisers' widths (n_feat0, feature_dim, prompt_dim) may change")
    before = (source.n_feat0, *source.feature_dim, *source.prompt_dim)
    after = (target.n_feat0, *target.feature_dim, *target.prompt_dim)
    if any(t < s for s, t in zip(before, after)):
        raise ValueError(f"cannot narrow the denoisers: {before} -> {after}")
    params, stacks = _unet_layouts(source, target)
    levels = [((s, t),) for s, t in zip(level_channels(source), level_channels(target))]
    wider = {}
    for key, value in state.items():
        unet = key.partition(".denoiser.unet.")[2]
        residual = key.split(".residual.")
        if unet:
            stack = next((name for name in stacks if unet.startswith(name)), None)
            dims = _cab_layouts(unet[len(stack):], stacks[stack]) if stack is not None else params[unet]
        elif key.startswith("cascades.") and len(residual) == 2:   # the 1x1 convs across cascades, per level
            level = levels[int(residual[1].split(".")[0])]
            dims = (level, level)
        else:
            dims = ()
        wider[key] = _widen(value, fresh[key], dims) if dims else value.clone()
    return wider
