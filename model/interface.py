"""What every reconstructor is: the volume it is handed (VolumeMeta), the Reconstructor protocol, the input
checks and errors they share, and the device choice.

The reconstructors (model.classical, model.inference) import this module; model.reconstruction builds them and
re-exports these names for the challenge code, so no module of model/ imports one above it.
"""
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch

DEFAULT_BATCH_SIZE = 8      # frames per forward pass


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
