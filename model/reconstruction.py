"""The reconstructor interface shared by the classical methods and GENRE-CMR, and the factory that builds one.

The challenge code sees model/ only through this module.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch

METHODS = ("zerofilled", "cgsense", "genre")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "genre_cmr.pt"
DEFAULT_BATCH_SIZE = 8
# GENRE reflection ensemble (model.reflection.ENSEMBLES): 2 = each window also read-out reflected
DEFAULT_ENSEMBLE = 2


@dataclass(frozen=True)
class VolumeMeta:
    num_acs: int            # 24 (2023), 16 (2024), 20 (2025)
    radial: bool            # ktRadial: 2-D mask, ACS = central num_acs x num_acs square
    cyclic: bool            # cine-like: adjacent-frame window wraps; mapping-like: replicate at the ends
    name: str = ""          # for log messages


@runtime_checkable
class Reconstructor(Protocol):
    name: str

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        """kspace (nt, nz, nc, ny, nx) complex64, mask (nt, ny, nx) bool -> RSS magnitude (nt, nz, ny, nx)
        float32. Works slice by slice; calls progress(1) after each slice (nz calls)."""
        ...


class WeightsUnavailable(Exception):
    """The GENRE-CMR weights file is missing or fails its sha256 check."""


class ReconstructionInputError(ValueError):
    """k-space or mask handed to a reconstructor have the wrong rank or mismatched shapes."""


def check_inputs(kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta) -> np.ndarray:
    """Validate shapes; returns the mask as bool (nt, ny, nx), broadcasting a (ny, nx) or (1, ny, nx) mask."""
    if kspace.ndim != 5:
        raise ReconstructionInputError(
            f"{meta.name}: k-space must be (nt, nz, nc, ny, nx), got shape {kspace.shape}")
    nt, _, _, ny, nx = kspace.shape
    try:
        return np.broadcast_to(np.asarray(mask, dtype=bool), (nt, ny, nx))
    except ValueError:
        raise ReconstructionInputError(
            f"{meta.name}: mask shape {np.shape(mask)} does not match k-space (nt, ny, nx) = {(nt, ny, nx)}"
        ) from None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_reconstructor(method: str, *, weights: str | Path | None = None, device: str | torch.device = "auto",
                        batch_size: int = DEFAULT_BATCH_SIZE, amp: bool = False,
                        ensemble: int = DEFAULT_ENSEMBLE, adapt_steps: int = 0,
                        adapt_seconds: float = 120.0) -> Reconstructor:
    """Reconstructor for ``method`` in METHODS or ``peer_methods()`` (development peers: peers.build_peer).
    ``weights`` (GENRE and learned peers) defaults to DEFAULT_WEIGHTS (a peer's own default for peers);
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
