"""The factory that builds a reconstructor by method name, and the reconstructor interface (model.interface)
re-exported: the challenge code sees model/ only through this module.
"""
from pathlib import Path

import torch

from model.interface import (DEFAULT_BATCH_SIZE, ReconstructionInputError, Reconstructor, VolumeMeta,
                             WeightsUnavailable, check_inputs, resolve_device)

__all__ = ["METHODS", "DEFAULT_WEIGHTS", "DEFAULT_BATCH_SIZE", "DEFAULT_ENSEMBLE", "DEFAULT_HARD_DC", "VolumeMeta",
           "Reconstructor", "WeightsUnavailable", "ReconstructionInputError", "check_inputs", "resolve_device",
           "build_reconstructor", "peer_methods"]

METHODS = ("zerofilled", "cgsense", "genre")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "genre_cmr.pt"
# GENRE reflection ensemble (model.reflection.ENSEMBLES): 2 = each window also read-out reflected
DEFAULT_ENSEMBLE = 2
# GENRE hard data consistency of the output (model.data_consistency.hard_consistent_image)
DEFAULT_HARD_DC = False


def build_reconstructor(method: str, *, weights: str | Path | None = None, device: str | torch.device = "auto",
                        batch_size: int = DEFAULT_BATCH_SIZE, amp: bool = False,
                        ensemble: int = DEFAULT_ENSEMBLE, adapt_steps: int = 0,
                        adapt_seconds: float = 120.0, hard_dc: bool = DEFAULT_HARD_DC) -> Reconstructor:
    """Reconstructor for ``method`` in METHODS or ``peer_methods()`` (development peers: peers.build_peer).
    ``weights`` (GENRE and learned peers) defaults to DEFAULT_WEIGHTS (a peer's own default for peers);
    ``batch_size`` counts frames per forward pass; ``amp`` (GENRE only) enables mixed precision on cuda;
    ``ensemble`` (GENRE only) is the number of reflections averaged (model.reflection.ENSEMBLES);
    ``adapt_steps`` > 0 (GENRE only) fine-tunes a copy of the generator on each volume's own measurements for at
    most that many steps and ``adapt_seconds`` (model.adaptation); ``hard_dc`` (GENRE only) puts the measured
    k-space back into each output (model.data_consistency.hard_consistent_image).

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
                                  adapt=adapt, hard_dc=hard_dc)
    if method in peer_methods():
        import peers
        # predict.py's --weights default names GENRE's file: a peer then takes its own default
        peer_weights = None if weights is None or Path(weights) == DEFAULT_WEIGHTS else weights
        return peers.build_peer(method, weights=peer_weights, device=torch_device, batch_size=batch_size)
    raise ValueError(f"unknown reconstruction method {method!r}; choose one of "
                     f"{', '.join(METHODS + peer_methods())}")


def peer_methods() -> tuple[str, ...]:
    """The development-only peers' method names (the top-level ``peers`` package of a development checkout;
    absent from the image, so empty there). Importing ``peers`` imports none of the peers' own packages."""
    try:
        import peers
    except ImportError:
        return ()
    return tuple(peers.PEERS)
