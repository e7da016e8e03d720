"""What a run does when a method fails: the fallback chain and the one out-of-memory policy.

The requested method comes first, then CG-SENSE, then zero-filled, each built on first use (MethodChain). A
method's output is taken only when image_problem finds nothing wrong with it; otherwise, or when it raises, the
next method reconstructs the slab. Before that, an out-of-memory error retries the same method with half its
batch size (smaller_batch_after), down to 1: this is the only place a run handles running out of memory.
"""
import gc
import logging
from typing import Callable, Protocol

import numpy as np
import torch

from model.reconstruction import Reconstructor, VolumeMeta, WeightsUnavailable

log = logging.getLogger(__name__)

FALLBACK_METHODS = ("cgsense", "zerofilled")
ReconstructorFactory = Callable[[str], Reconstructor]


class AttemptProgress(Protocol):
    """The slices bar as an attempt sees it: a failed attempt rewinds what it counted."""

    def begin_attempt(self) -> None: ...

    def abort_attempt(self) -> None: ...

    def update(self, slices: int) -> None: ...


class MethodChain:
    """The requested method, then the classical fallbacks, each built on first use.

    If the requested method cannot be built (GENRE weights missing or corrupt), that is said once and the
    next method becomes the primary for all files.
    """

    def __init__(self, requested: str, factory: ReconstructorFactory, notes: list[str]):
        self._factory = factory
        self._built: dict[str, Reconstructor] = {}
        self._unbuildable: dict[str, str] = {}
        self.methods = [requested, *(m for m in FALLBACK_METHODS if m != requested)]
        while self._get(self.methods[0]) is None and len(self.methods) > 1:
            failed = self.methods.pop(0)
            note = (f"{failed} reconstructor unavailable ({self._unbuildable[failed]}); "
                    f"using {self.methods[0]} as the primary method for all files")
            log.warning(note)
            notes.append(note)

    @property
    def primary(self) -> str:
        return self.methods[0]

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                    progress: AttemptProgress, notes: list[str] | None = None
                    ) -> tuple[np.ndarray | None, str | None, str | None]:
        """-> (image (nt, nz, ny, nx) float32, method, why earlier methods failed); image None if all failed.
        Retries after CUDA out-of-memory are appended to ``notes`` (the file's report row)."""
        expected = (kspace.shape[0], kspace.shape[1], kspace.shape[3], kspace.shape[4])
        problems = []
        for method in self.methods:
            reconstructor = self._get(method)
            if reconstructor is None:
                problems.append(f"{method}: {self._unbuildable[method]}")
                continue
            image, problem = _attempt(reconstructor, kspace, mask, meta, expected, progress, notes)
            if problem is None:
                return image, method, "; ".join(problems) or None
            log.warning("%s: %s failed: %s", meta.name, method, problem)
            problems.append(f"{method}: {problem}")
        return None, None, "; ".join(problems)

    def _get(self, method: str) -> Reconstructor | None:
        if method not in self._built and method not in self._unbuildable:
            try:
                self._built[method] = self._factory(method)
            except WeightsUnavailable as error:
                self._unbuildable[method] = f"weights unavailable: {error}"
            except Exception as error:  # a broken device or build must not stop the fallbacks
                self._unbuildable[method] = f"cannot build: {type(error).__name__}: {error}"
        return self._built.get(method)


def _attempt(reconstructor: Reconstructor, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
             expected: tuple[int, ...], progress: AttemptProgress, notes: list[str] | None = None
             ) -> tuple[np.ndarray | None, str | None]:
    """One method on one slab, retried under the out-of-memory policy (said in ``notes``) -> (image, problem)."""
    while True:
        progress.begin_attempt()
        try:
            image = reconstructor.reconstruct(kspace, mask, meta, progress=progress.update)
        except Exception as error:
            progress.abort_attempt()       # rewind the failed try's slices
            batch_size = smaller_batch_after(error, reconstructor)
            if batch_size is None:
                return None, f"{type(error).__name__}: {error}"
            note = f"out of memory in {reconstructor.name}; retried with batch size {batch_size}"
            log.warning("%s: %s", meta.name, note)
            if notes is not None:          # the file's report row says why it ran with a smaller batch
                notes.append(note)
            continue
        problem = image_problem(image, expected)
        if problem is not None:
            progress.abort_attempt()
            return None, f"invalid output: {problem}"
        return np.asarray(image, dtype=np.float32), None


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or any error whose text says "out of memory" (cuDNN, cuBLAS and older torch raise
    a RuntimeError with it)."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def smaller_batch_after(error: BaseException, reconstructor: Reconstructor) -> int | None:
    """The run's one out-of-memory policy: after an out-of-memory error, a reconstructor whose ``batch_size`` is
    above 1 continues with half of it, for this and every later file, and the attempt is repeated. Returns the new
    batch size; None when ``error`` is something else or the batch is already 1 (the next method then runs)."""
    batch_size = getattr(reconstructor, "batch_size", 1)
    if not is_out_of_memory(error) or batch_size <= 1:
        return None
    reconstructor.batch_size = batch_size // 2
    gc.collect()
    torch.cuda.empty_cache()           # gives the failed try's cached blocks back (a no-op without CUDA)
    return reconstructor.batch_size


def image_problem(image, expected_shape: tuple[int, ...]) -> str | None:
    """Why a reconstructed or output array is unusable (None when it is fine)."""
    if not isinstance(image, np.ndarray):
        return f"not an array but {type(image).__name__}"
    if not np.issubdtype(image.dtype, np.floating):
        return f"dtype {image.dtype}, not real floating point"
    if image.shape != tuple(expected_shape):
        return f"shape {image.shape}, expected {tuple(expected_shape)}"
    if not np.isfinite(image).all():
        return f"{int(np.size(image) - np.isfinite(image).sum())} non-finite values"
    if not image.any():
        return "all zero"
    return None
