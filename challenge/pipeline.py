"""The streaming pipeline of a run: three threads keep host memory bounded by a few volumes.

A reader prefetches the next k-space (at most one item ahead) in slabs of slices sized so that the process stays
under ``max_memory_bytes`` (challenge.memory); the main thread reconstructs each slab (challenge.fallback) and
assembles the volume's image; a writer writes and re-reads finished outputs (at most two waiting;
challenge.output_safety). A row becomes valid only once its output is on disk. One file's surprise (an
exception, a MemoryError) fails that file only, and no thread waits for a partner that has stopped.
"""
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from challenge import matio, memory, output_safety, rules
from challenge.fallback import MethodChain, image_problem
from challenge.report import BY_FALLBACK, BY_MODEL, FAILED, FileResult, log_outcome
from challenge.run_setup import RunOptions
from challenge.sanitise import derive_mask, load_mask, read_reason, sanitise_kspace

log = logging.getLogger(__name__)

_DONE = object()           # end-of-stream marker on the queues
_QUEUE_POLL_S = 0.5
_TQDM = dict(dynamic_ncols=True, mininterval=1.0)


@dataclass
class _FileWork:
    """One file in flight: its report row, k-space geometry and the image being assembled."""
    job: rules.Job
    result: FileResult
    shape: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)   # k-space (nt, nz, nc, ny, nx)
    has_time_axis: bool = True
    image: np.ndarray | None = None                           # (nt, nz, ny, nx) float32
    methods: list[str] = field(default_factory=list)
    fallback_reasons: list[str] = field(default_factory=list)
    has_data: bool = False
    failed: bool = False
    finished: bool = False                                    # handed to the writer
    written: bool = False                                     # on disk, re-read, renamed: the row is valid
    outcome: str = FAILED                                     # what the row becomes once written


@dataclass
class _Slab:
    work: _FileWork
    index: int
    count: int
    slices: slice
    kspace: np.ndarray           # (nt, len(slices), nc, ny, nx) complex64, finite
    mask: np.ndarray             # (nt, ny, nx) bool
    has_data: bool               # any nonzero sample


@dataclass
class _ReadFailure:
    work: _FileWork
    reason: str


class Pipeline:
    """Reads, reconstructs and writes the files of a run in three threads; returns their report rows."""

    def __init__(self, options: RunOptions, chain: MethodChain, guard: output_safety.InputGuard):
        self.options = options
        self.chain = chain
        self.guard = guard
        self.expected_shapes: dict[str, tuple] = {}   # input_relative -> output shape (read from the header)
        self.output_root = Path(options.output_root)
        self.stop = threading.Event()
        self.read_queue: queue.Queue = queue.Queue(maxsize=1)
        self.write_queue: queue.Queue = queue.Queue(maxsize=2)

    def run(self, jobs: list[rules.Job]) -> list[FileResult]:
        works = [_FileWork(job, FileResult.for_job(job)) for job in jobs]
        reader = threading.Thread(target=self._read_all, args=(works,), name="prefetch", daemon=True)
        self.writer = writer = threading.Thread(target=self._write_all, name="writer", daemon=True)
        with logging_redirect_tqdm(), \
                tqdm(total=len(works), desc="files", unit="file", position=0, **_TQDM) as self.files_bar, \
                tqdm(total=0, desc="slices", unit="slice", position=1, leave=False,
                     disable=not sys.stderr.isatty(), **_TQDM) as slices_bar:  # 2 bars need a terminal
            self.progress = _SliceProgress(slices_bar)
            reader.start()
            writer.start()
            try:
                self._reconstruct_all()
            finally:
                self.stop.set()           # ends the reader early only if we are leaving on an exception
                self._put_write(_DONE)
                writer.join()
                reader.join()
        for work in works:                # nothing handed to the writer may stay unaccounted for
            if work.finished and not work.written and work.result.outcome != FAILED:
                work.result.outcome, work.result.method = FAILED, None
            if work.finished and not work.written and not work.result.reason:
                work.result.reason = "reconstructed, but the writer stopped before writing the output"
        return [work.result for work in works]

    # main thread --------------------------------------------------------------------------------------
    def _reconstruct_all(self) -> None:
        while (item := self.read_queue.get()) is not _DONE:
            if isinstance(item, _ReadFailure):
                self._fail(item.work, item.reason)
                continue
            work = item.work
            last = item.index == item.count - 1
            try:                           # allocation included: an absurd shape fails its file only
                if item.index == 0 and not work.failed:
                    nt, nz, _, ny, nx = work.shape
                    work.image = np.zeros((nt, nz, ny, nx), np.float32)
                    self.progress.start_file(nz, work.result.input_relative)
                if not work.failed:
                    self._reconstruct_slab(item)
                del item                   # free the slab's k-space before waiting for the next one
                if last and not work.failed:
                    self._finish(work)
            except Exception as error:     # one file's surprise (MemoryError included) must not end the run
                item = None
                log.exception("%s: unexpected error", work.result.input_relative)
                self._fail(work, f"unexpected error: {type(error).__name__}: {error}")

    def _reconstruct_slab(self, slab: _Slab) -> None:
        work = slab.work
        if not slab.has_data:
            self.progress.update(slab.slices.stop - slab.slices.start)
            return
        work.has_data = True
        started = time.monotonic()
        meta = rules.volume_meta(slab.work.job)
        image, method, fallback_reason = self.chain.reconstruct(slab.kspace, slab.mask, meta, self.progress,
                                                                work.result.notes)
        elapsed = time.monotonic() - started
        work.result.seconds += elapsed
        work.result.reconstruct_seconds += elapsed
        if image is None:
            self._fail(work, f"every method failed: {fallback_reason}")
            return
        work.image[:, slab.slices] = image
        if method not in work.methods:
            work.methods.append(method)
        if fallback_reason:
            work.fallback_reasons.append(fallback_reason)

    def _finish(self, work: _FileWork) -> None:
        if not work.has_data:
            self._fail(work, "k-space is all zero")
            return
        job, crop = work.job, self.options.crop
        try:
            expected = tuple(rules.expected_output_shape(job, work.shape, work.has_time_axis, crop=crop))
            output = rules.to_output_array(job, work.image, work.has_time_axis, crop=crop)
        except Exception as error:
            self._fail(work, f"cannot form the output array: {type(error).__name__}: {error}")
            return
        work.image = None
        problem = image_problem(output, expected)
        if problem is not None:
            self._fail(work, f"output invalid: {problem}")
            return
        fell_back = any(method != self.chain.primary for method in work.methods)
        # the row stays FAILED until the writer has the bytes on disk (see _write_one)
        work.outcome = BY_FALLBACK if fell_back else BY_MODEL
        work.result.reason = "reconstructed, but the output was never written"
        work.finished = True
        if not self._put_write((work, np.asarray(output, dtype=np.float32), expected)):
            work.result.reason = "reconstructed, but the writer had stopped: the output was not written"
            self._file_done(work.result)

    def _fail(self, work: _FileWork, reason: str) -> None:
        if work.failed or work.finished:
            return
        work.failed = True
        work.image = None
        work.result.outcome, work.result.method, work.result.reason = FAILED, None, reason
        self._file_done(work.result)

    def _file_done(self, result: FileResult) -> None:
        self.files_bar.update(1)
        log_outcome(result)

    # reader thread ------------------------------------------------------------------------------------
    def _read_all(self, works: list[_FileWork]) -> None:
        try:
            for work in works:
                if self.stop.is_set():
                    return
                try:
                    self._read_file(work)
                except Exception as error:  # never leave the main thread waiting for a file
                    log.exception("%s: unexpected error while reading", work.result.input_relative)
                    self._put_read(_ReadFailure(work, f"unexpected error while reading {work.job.input_path}: "
                                                      f"{type(error).__name__}: {error}"))
        finally:
            self._put_read(_DONE)

    def _read_file(self, work: _FileWork) -> None:
        job, notes = work.job, work.result.notes
        started = time.monotonic()
        try:
            shape, has_time_axis, key = matio.kspace_info(job.input_path, job.kspace_key)
        except Exception as error:
            self._put_read(_ReadFailure(work, read_reason(job, error)))
            return
        work.shape, work.has_time_axis = tuple(shape), has_time_axis
        try:
            self.expected_shapes[work.result.input_relative] = tuple(
                rules.expected_output_shape(job, work.shape, has_time_axis, crop=self.options.crop))
        except Exception:
            pass                  # the file fails later with its reason; only the stale-file check needs this
        nt, nz, nc, ny, nx = work.shape
        try:
            slabs = memory.plan_slabs(work.shape, self.chain.methods, self.options.max_memory_bytes,
                                      self.options.max_slab_bytes)
        except memory.MemoryBoundError as error:
            self._put_read(_ReadFailure(work, f"{job.input_path}: {error}"))
            return
        mask = load_mask(job, (nt, ny, nx), notes)
        if len(slabs) > 1:
            log.info("%s: %.1f GB of k-space, reading %d slabs of slices",
                     job.relative_path, np.prod(work.shape) * 8 / 1e9, len(slabs))
        for index, slices in enumerate(slabs):
            try:
                volume = matio.read_kspace(job.input_path, key, slices=slices if len(slabs) > 1 else None)
                kspace = sanitise_kspace(volume.kspace, (nt, slices.stop - slices.start, nc, ny, nx), job, notes)
            except Exception as error:
                self._put_read(_ReadFailure(work, read_reason(job, error)))
                return
            notes.extend(w for w in volume.warnings if w not in notes)
            has_data = bool(kspace.any())
            slab_mask = mask if mask is not None else derive_mask(kspace)
            elapsed = time.monotonic() - started
            work.result.seconds += elapsed
            work.result.read_seconds += elapsed
            if not self._put_read(_Slab(work, index, len(slabs), slices, kspace, slab_mask, has_data)):
                return
            del kspace, volume
            started = time.monotonic()

    def _put_read(self, item) -> bool:
        return _put(self.read_queue, item, self.stop.is_set)

    # writer thread ------------------------------------------------------------------------------------
    def _put_write(self, item) -> bool:
        return _put(self.write_queue, item, lambda: not self.writer.is_alive())

    def _write_all(self) -> None:
        while (item := self.write_queue.get()) is not _DONE:
            work = item[0]
            try:
                self._write_one(*item)
            except BaseException as error:  # the writer must outlive any one file: nothing queued is dropped
                work.result.outcome, work.result.method = FAILED, None
                work.result.reason = f"writing the output failed: {type(error).__name__}: {error}"
            try:
                self._file_done(work.result)
            except Exception:
                pass                        # a progress bar or log line must not stop the writer

    def _write_one(self, work: _FileWork, output: np.ndarray, expected: tuple) -> None:
        """The row becomes valid only once the output is written, flushed, re-read and renamed into place;
        a failure leaves whatever was at the path before (output_safety.write_output)."""
        path = self.output_root / work.job.output_relative
        started = time.monotonic()
        try:
            output_safety.write_output(path, output, expected, self.guard)
        except Exception as error:
            work.result.outcome, work.result.method = FAILED, None
            work.result.reason = f"writing {path} failed: {type(error).__name__}: {error}"
        else:
            work.written = True
            work.result.outcome = work.outcome
            work.result.method = "+".join(work.methods)
            work.result.reason = "; ".join(work.fallback_reasons) or None
        elapsed = time.monotonic() - started
        work.result.seconds += elapsed
        work.result.write_seconds += elapsed


class _SliceProgress:
    """The slices bar; a failed attempt rewinds it so that fallbacks do not overshoot."""

    def __init__(self, bar: tqdm):
        self.bar = bar
        self._attempt_start = 0

    def start_file(self, slices: int, name: str) -> None:
        self.bar.reset(total=slices)
        self.bar.set_postfix_str(name, refresh=False)

    def begin_attempt(self) -> None:
        self._attempt_start = self.bar.n

    def abort_attempt(self) -> None:
        self.bar.n = self._attempt_start
        self.bar.refresh()

    def update(self, slices: int) -> None:
        self.bar.update(slices)


def _put(target: queue.Queue, item, give_up: Callable[[], bool]) -> bool:
    """Blocking put that gives up (False) once ``give_up()`` says so: no thread hangs on a dead partner."""
    while True:
        try:
            target.put(item, timeout=_QUEUE_POLL_S)
            return True
        except queue.Full:
            if give_up():
                return False
