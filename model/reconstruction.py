"""The factory that builds a reconstructor by method name, and the reconstructor interface (model.interface)
re-exported: the challenge code sees model/ only through this module.
"""
from pathlib import Path

import torch

from model.interface import (DEFAULT_BATCH_SIZE, ReconstructionInputError, Reconstructor, VolumeMeta,
                             WeightsUnavailable, check_inputs, resolve_device)

__all__ = ["METHODS", "DEFAULT_WEIGHTS", "DEFAULT_BATCH_SIZE", "DEFAULT_ENSEMBLE", "VolumeMeta", "Reconstructor",
           "WeightsUnavailable", "ReconstructionInputError", "check_inputs", "resolve_device", "build_reconstructor"]

METHODS = ("zerofilled", "cgsense", "genre")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "genre_cmr.pt"
# GENRE reflection ensemble (model.reflection.ENSEMBLES): 2 = each window also read-out reflected
DEFAULT_ENSEMBLE = 2


def build_reconstructor(method: str, *, weights: str | Path | None = None, device: str | torch.device = "auto",
                        batch_size: int = DEFAULT_BATCH_SIZE, amp: bool = False,
                        ensemble: int = DEFAULT_ENSEMBLE, adapt_steps: int = 0,
                        adapt_seconds: float = 120.0) -> Reconstructor:
    """Reconstructor for ``method`` in METHODS. ``weights`` (GENRE only) defaults to DEFAULT_WEIGHTS;
    ``batch_size`` counts frames per forward pass; ``amp`` (GENRE only) enables mixed precision on cuda;
    ``ensemble`` (GENRE only) is the number of reflections averaged (model.reflection.ENSEMBLES);
    ``adapt_steps`` > 0 (GENRE only) fine-tunes a copy of the generator on each volume's own measurements for at
    most that many steps and ``adapt_seconds`` (model.adaptation).

    Raises WeightsUnavailable (from model.inference) when the GENRE weights are missing or corrupt.
    """
    torch_device = resolve_device(device)
    if method == "zerofilled":
        from model.classical import ZeroFilled
        return ZeroFilled(device=torch_device, batch_size=batch_size)
    if method == "cgsense":
        from model.classical import CGSense
        return CGSense(device=torch_device, batch_size=batch_size)
    if method == "genre":
        from model.adaptation import AdaptConfig   # lazy: the network code is only needed here
        from model.inference import GenreReconstructor
        adapt = AdaptConfig(steps=adapt_steps, seconds=adapt_seconds) if adapt_steps > 0 else None
        return GenreReconstructor(weights=Path(weights) if weights is not None else DEFAULT_WEIGHTS,
                                  device=torch_device, batch_size=batch_size, amp=amp, ensemble=ensemble,
                                  adapt=adapt)
    raise ValueError(f"unknown reconstruction method {method!r}; choose one of {', '.join(METHODS)}")
