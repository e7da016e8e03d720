"""What a run makes of an input before reconstructing it: k-space checked against its header with non-finite
samples set to 0, the mask read and checked (or derived from the k-space), and read errors worded to name the
file. Every repair is a note on the file's report row."""
import logging
from pathlib import Path

import numpy as np

from challenge import matio, rules

log = logging.getLogger(__name__)


def sanitise_kspace(kspace: np.ndarray, expected_shape: tuple, job: rules.Job, notes: list[str]) -> np.ndarray:
    """Check the shape against the header; non-finite samples -> 0 (with a note)."""
    if kspace.shape != expected_shape:
        raise matio.MatReadError(f"{job.input_path}: read k-space of shape {kspace.shape}, "
                                 f"header says {expected_shape}")
    kspace = np.asarray(kspace, dtype=np.complex64)
    finite = np.isfinite(kspace)
    if not finite.all():
        count = int(finite.size - np.count_nonzero(finite))
        kspace = np.where(finite, kspace, np.complex64(0))
        note = f"{count} non-finite k-space samples set to 0"
        log.warning("%s: %s", job.relative_path, note)
        notes.append(note)
    return kspace


def load_mask(job: rules.Job, shape: tuple[int, int, int], notes: list[str]) -> np.ndarray | None:
    """The job's mask as (nt, ny, nx) bool, or None (with a note) when it must be derived from k-space."""
    nt, ny, nx = shape
    problem = None
    if job.mask_path is None:
        problem = "no mask file for this input"
    elif not Path(job.mask_path).is_file():
        problem = f"mask file {job.mask_path} missing"
    else:
        try:
            mask = np.asarray(matio.read_mask(job.mask_path, job.mask_key)) != 0
        except Exception as error:
            problem = f"mask file {job.mask_path} unreadable ({error})"
        else:
            if mask.shape in ((ny, nx), (1, ny, nx), (nt, ny, nx)):
                if mask.any():
                    return np.broadcast_to(mask, shape)
                problem = f"mask file {job.mask_path} is all zero"
            else:
                problem = (f"mask file {job.mask_path} has shape {mask.shape}, k-space needs "
                           f"{(ny, nx)} or {(nt, ny, nx)}")
    note = f"{problem}; mask derived from the nonzero k-space samples"
    log.warning("%s: %s", job.relative_path, note)
    notes.append(note)
    return None


def derive_mask(kspace: np.ndarray) -> np.ndarray:
    """(nt, nz, nc, ny, nx) -> (nt, ny, nx) bool: sampled where any slice or coil holds a nonzero value."""
    return (kspace != 0).any(axis=(1, 2))


def read_reason(job: rules.Job, error: Exception) -> str:
    text = str(error)
    return text if str(job.input_path) in text else f"{job.input_path}: {type(error).__name__}: {text}"
