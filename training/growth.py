"""Deepen a trained generator: append cascades that start as copies of its last one.

An unrolled network's cascades are successive refinements with the same interface, so a copy of the last
cascade is a trained refinement from its first step on; training the deeper network then continues from the
shallower one's weights instead of from random ones (docs/method-choices.md). Where the deeper generator gates
its cascades (model.config ``gated_from``) the copies come with their gates shut (0): its output is the shallower
one's exactly, and training opens each gate as far as its cascade helps.
"""
import torch


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
