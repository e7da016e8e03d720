"""The streaming challenge run: discover, prefetch, reconstruct, write, validate, fall back, report.

Three threads keep host memory bounded by a few volumes: a reader prefetches the next k-space (at most one
item ahead) while the main thread reconstructs the current one, and a writer writes and re-reads finished
outputs (at most two waiting). Each volume is read and reconstructed in slabs of slices sized so that the
process stays under ``max_memory_bytes`` (challenge.memory); a volume whose one slice cannot fit fails alone.

Every output is checked in memory (finite, not all zero, right shape), written to a temporary file, flushed,
re-read (key, float32, exact expected shape) and only then renamed into place; its row becomes valid only after
that (challenge.output_safety). A failing primary method falls back to CG-SENSE, then zero-filled, so a file
only fails when its input cannot be read or holds no data, or its output cannot be written. Nothing is ever
written under the input root or onto an input (links resolved); temporary files live beside their final output
and never end in ``.mat``.
"""
import gc
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from challenge import matio, memory, output_safety, rules
from challenge.discovery import discover
from challenge.run_setup import RunSetupError, check_device, shard_from_environment
from challenge.report import BY_FALLBACK, BY_MODEL, FAILED, RESUMED, FileResult, RunReport, report_name
from model.reconstruction import (DEFAULT_BATCH_SIZE, DEFAULT_ENSEMBLE, DEFAULT_WEIGHTS, Reconstructor, VolumeMeta,
                                  WeightsUnavailable, build_reconstructor, resolve_device)

log = logging.getLogger(__name__)

FALLBACK_METHODS = ("cgsense", "zerofilled")
ReconstructorFactory = Callable[[str], Reconstructor]

_DONE = object()           # end-of-stream marker on the queues
_QUEUE_POLL_S = 0.5


@dataclass
class RunOptions:
    input_root: Path
    output_root: Path
    method: str = "genre"                       # genre | cgsense | zerofilled
    weights: Path = DEFAULT_WEIGHTS
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE        # frames per forward pass; halved on CUDA out-of-memory
    amp: bool = False
    ensemble: int = DEFAULT_ENSEMBLE            # GENRE reflections averaged per window (model.reflection)
    adapt_steps: int = 0                        # GENRE test-time adaptation steps per volume (0: off)
    adapt_seconds: float = 120.0                # and its wall-time budget per volume
    shard: tuple[int, int] | None = None        # (K, N): jobs i with i % N == K; None: RANK/WORLD_SIZE under torchrun, else (0, 1)
    resume: bool = False
    crop: bool = False                          # validation-phase run4Ranking crop
    max_memory_bytes: int = memory.DEFAULT_MAX_MEMORY_BYTES  # the process's peak host memory (challenge.memory)
    max_slab_bytes: int | None = None           # also cap each slab's k-space at this (tests; None: no cap)


def run(options: RunOptions, reconstructor_factory: ReconstructorFactory | None = None) -> RunReport:
    """Reconstruct every file of this shard; returns the report (also written as JSON into the output root).

    ``reconstructor_factory(method)`` builds the reconstructor for a method name (tests inject failing
    models here); by default ``build_reconstructor`` with the options' weights, device, batch size, amp.
    Raises RunSetupError before touching any file when the roots are unusable.
    """
    started = time.monotonic()
    input_root, output_root = Path(options.input_root), Path(options.output_root)
    shard_note = None
    if options.shard is None:
        shard, shard_note = shard_from_environment()
    else:
        shard = options.shard
    _check_shard(shard)
    if reconstructor_factory is None:
        check_device(options.device)
    prepare_output_root(input_root, output_root)
    factory = reconstructor_factory or _default_factory(options, shard)

    report = RunReport(input_root=str(input_root), output_root=str(output_root),
                       requested_method=options.method, primary_method=options.method, shard=shard)
    if shard_note:
        log.warning(shard_note)
        report.notes.append(shard_note)
    guard = output_safety.InputGuard(input_root, [])
    try:
        guard = _run_shard(options, factory, report, input_root, output_root)
    except Exception as error:      # whatever happens, the report says it and is written
        log.exception("the run stopped unexpectedly")
        report.error = f"the run stopped unexpectedly: {type(error).__name__}: {error}"

    report.files.sort(key=lambda result: result.input_relative)
    report.seconds = time.monotonic() - started
    report_path = output_root / report_name(shard)
    problem = guard.problem(report_path)
    if problem is None:
        report.save(report_path)
    else:
        report.error = f"the run report was not written: {problem}"
    return report


def _run_shard(options: RunOptions, factory: ReconstructorFactory, report: RunReport, input_root: Path,
               output_root: Path) -> output_safety.InputGuard:
    """Discover, reconstruct this shard's files into ``report``; returns the input guard it used."""
    shard = report.shard
    discovery = discover(input_root)
    jobs = sorted(discovery.jobs, key=lambda job: str(job.relative_path))
    mine = [job for index, job in enumerate(jobs) if index % shard[1] == shard[0]]
    report.other_shards_files = len(jobs) - len(mine)
    log.info("%d files to reconstruct under %s (%d skipped, %d unreadable); shard %d/%d: %d files",
             len(jobs), input_root, len(discovery.skipped), len(discovery.errors), *shard, len(mine))
    if shard[0] == 0:  # the other shards would count the same discovery errors again
        report.files.extend(_discovery_failure(discovery.root, error) for error in discovery.errors)
    if not jobs and not discovery.errors:
        report.error = f"no files to reconstruct found under {input_root}"
        log.error(report.error)

    # every input and mask the run could read, links resolved: no output may land on one of them
    guard = output_safety.InputGuard(input_root, [path for job in discovery.jobs
                                                  for path in (job.input_path, job.mask_path) if path is not None]
                                     + [path for path, _ in discovery.errors])
    remove_temporary_files(output_root, input_root, shard, mine)
    todo, expected_shapes = [], {}
    for job in mine:
        problem = guard.problem(output_root / job.output_relative)
        if problem is not None:
            refused = _new_result(job)
            refused.reason = f"{problem}; nothing written (an output must never replace an input)"
            _log_outcome(refused)
            report.files.append(refused)
            continue
        resumed = _resumed_result(job, output_root, options.crop) if options.resume else None
        if resumed is not None:
            report.files.append(resumed)
        else:
            todo.append(job)
    if todo:
        chain = MethodChain(options.method, factory, report.notes)
        report.primary_method = chain.primary
        pipeline = _Pipeline(options, chain, guard)
        report.files.extend(pipeline.run(todo))
        expected_shapes = pipeline.expected_shapes
    _settle_failed_outputs(report, output_root, expected_shapes, guard)
    remove_temporary_files(output_root, input_root, shard, mine)
    return guard


def _settle_failed_outputs(report: RunReport, output_root: Path, expected_shapes: dict, guard) -> None:
    """A failed input's output path must not hold a stale file the scorer would read as this run's answer:
    keep it only when it validates, move it aside otherwise (output_safety.stale_output_action)."""
    for result in report.files:
        if result.outcome != FAILED or result.output_relative is None:
            continue
        try:
            note = output_safety.stale_output_action(output_root, result.output_relative,
                                                     expected_shapes.get(result.input_relative), guard)
        except Exception as error:     # settling one file must not cost the report
            note = f"checking the output path for a stale file failed: {type(error).__name__}: {error}"
        if note:
            log.warning("%s: %s", result.input_relative, note)
            result.notes.append(note)


def prepare_output_root(input_root: Path, output_root: Path) -> None:
    """Create the output root and prove that it is writable; it must not lie inside the input root."""
    if not input_root.is_dir():
        raise RunSetupError(f"input root {input_root} is not a directory")
    resolved_input, resolved_output = input_root.resolve(), output_root.resolve()
    if resolved_output == resolved_input or resolved_input in resolved_output.parents:
        raise RunSetupError(f"output root {output_root} lies inside the input root {input_root}; "
                            f"nothing may be written under the input root")
    try:
        output_root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_root, prefix=".write-test-", suffix=".tmp"):
            pass
    except OSError as error:
        raise RunSetupError(f"output root {output_root} is not writable: {error}") from error


def remove_temporary_files(output_root: Path, input_root: Path, shard: tuple[int, int],
                           jobs: list[rules.Job]) -> int:
    """Delete temp files of interrupted writes: anywhere in the output tree for a single process, only
    those beside this shard's outputs when several shards share the tree (the others may be writing now).
    Never looks into the input root, even when it lies inside the output root. Returns how many."""
    if shard[1] == 1:
        candidates = [path for path in _files_outside(output_root, input_root.resolve())
                      if matio.temporary_target(path) is not None]
    else:
        outputs = {output_root / job.output_relative for job in jobs}
        candidates = [path for folder in {output.parent for output in outputs} if folder.is_dir()
                      for path in folder.iterdir() if matio.temporary_target(path) in outputs]
    candidates.append(output_root / (report_name(shard) + ".tmp"))
    removed = 0
    for path in candidates:
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
        except OSError as error:     # a left-over we cannot remove must not stop the run
            log.warning("cannot remove the temporary file %s: %s", path, error)
    if removed:
        log.info("removed %d temporary files of an earlier run from %s", removed, output_root)
    return removed


def _files_outside(root: Path, excluded: Path):
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if (Path(folder) / name).resolve() != excluded]
        yield from (Path(folder) / name for name in names)


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
                    progress: "_SliceProgress", notes: list[str] | None = None
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


def _attempt(reconstructor: Reconstructor, kspace, mask, meta, expected, progress, notes: list[str] | None = None):
    """One method on one slab; CUDA out-of-memory retries with half the batch size (said in ``notes``).
    -> (image, problem)."""
    while True:
        progress.begin_attempt()
        try:
            image = reconstructor.reconstruct(kspace, mask, meta, progress=progress.update)
        except Exception as error:
            batch_size = getattr(reconstructor, "batch_size", 1)
            if _is_out_of_memory(error) and batch_size > 1:
                reconstructor.batch_size = batch_size // 2
                note = f"out of memory in {reconstructor.name}; retried with batch size {reconstructor.batch_size}"
                log.warning("%s: %s", meta.name, note)
                if notes is not None:      # the file's report row says why it ran with a smaller batch
                    notes.append(note)
                progress.abort_attempt()   # rewind the failed try's slices, as for any failed attempt
                gc.collect()
                continue
            progress.abort_attempt()
            return None, f"{type(error).__name__}: {error}"
        problem = image_problem(image, expected)
        if problem is not None:
            progress.abort_attempt()
            return None, f"invalid output: {problem}"
        return np.asarray(image, dtype=np.float32), None


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


def _is_out_of_memory(error: Exception) -> bool:
    return "out of memory" in str(error).lower()


# ---------------------------------------------------------------------------------------------------------
# streaming pipeline

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


class _Pipeline:
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
        works = [_FileWork(job, _new_result(job)) for job in jobs]
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
        _log_outcome(result)

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
            self._put_read(_ReadFailure(work, _read_reason(job, error)))
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
        mask = _load_mask(job, (nt, ny, nx), notes)
        if len(slabs) > 1:
            log.info("%s: %.1f GB of k-space, reading %d slabs of slices",
                     job.relative_path, np.prod(work.shape) * 8 / 1e9, len(slabs))
        for index, slices in enumerate(slabs):
            try:
                volume = matio.read_kspace(job.input_path, key, slices=slices if len(slabs) > 1 else None)
                kspace = _sanitise(volume.kspace, (nt, slices.stop - slices.start, nc, ny, nx), job, notes)
            except Exception as error:
                self._put_read(_ReadFailure(work, _read_reason(job, error)))
                return
            notes.extend(w for w in volume.warnings if w not in notes)
            has_data = bool(kspace.any())
            slab_mask = mask if mask is not None else _derive_mask(kspace)
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


_TQDM = dict(dynamic_ncols=True, mininterval=1.0)


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


def _sanitise(kspace: np.ndarray, expected_shape: tuple, job: rules.Job, notes: list[str]) -> np.ndarray:
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


def _load_mask(job: rules.Job, shape: tuple[int, int, int], notes: list[str]) -> np.ndarray | None:
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


def _derive_mask(kspace: np.ndarray) -> np.ndarray:
    """(nt, nz, nc, ny, nx) -> (nt, ny, nx) bool: sampled where any slice or coil holds a nonzero value."""
    return (kspace != 0).any(axis=(1, 2))


def _read_reason(job: rules.Job, error: Exception) -> str:
    text = str(error)
    return text if str(job.input_path) in text else f"{job.input_path}: {type(error).__name__}: {text}"


def _new_result(job: rules.Job) -> FileResult:
    return FileResult(input_relative=str(job.relative_path), output_relative=str(job.output_relative),
                      modality=job.modality, pattern=job.pattern, acceleration=job.acceleration)


def _resumed_result(job: rules.Job, output_root: Path, crop: bool) -> FileResult | None:
    """A RESUMED row when the output exists and validates against the expected shape (from the k-space
    header, without loading the data); None means it must be (re)done."""
    path = output_root / job.output_relative
    if not path.is_file():
        return None
    try:
        shape, has_time_axis, _ = matio.kspace_info(job.input_path, job.kspace_key)
        matio.validate_output(path, tuple(rules.expected_output_shape(job, tuple(shape), has_time_axis, crop=crop)))
    except Exception as error:
        log.info("%s: existing output is redone (%s)", job.relative_path, error)
        return None
    result = _new_result(job)
    result.outcome, result.method = RESUMED, "earlier run"
    _log_outcome(result)
    return result


def _discovery_failure(input_root: Path, error) -> FileResult:
    path, reason = error
    try:
        relative = str(Path(path).relative_to(input_root))
    except ValueError:
        relative = str(path)
    return FileResult(input_relative=relative, output_relative=None, outcome=FAILED,
                      reason=f"{path}: {reason}")


def _log_outcome(result: FileResult) -> None:
    detail = f" ({result.reason})" if result.reason else ""
    level = logging.WARNING if result.outcome in (FAILED, BY_FALLBACK) else logging.INFO
    log.log(level, "%-8s %-10s %7.1f s  %s%s", result.outcome, result.method or "-", result.seconds,
            result.input_relative, detail)


def _check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise RunSetupError(f"invalid shard {index}/{count}: need 0 <= K < N")


def _default_factory(options: RunOptions, shard: tuple[int, int]) -> ReconstructorFactory:
    device = options.device
    # one GPU per process under torchrun
    if device == "auto" and shard[1] > 1 and "LOCAL_RANK" in os.environ and resolve_device("auto").type == "cuda":
        device = f"cuda:{os.environ['LOCAL_RANK']}"

    def factory(method: str) -> Reconstructor:
        # the last resort runs on the CPU: it must work even when the GPU is the problem
        try:
            return build_reconstructor(method, weights=options.weights, batch_size=options.batch_size,
                                       amp=options.amp, ensemble=options.ensemble,
                                       adapt_steps=options.adapt_steps, adapt_seconds=options.adapt_seconds,
                                       device="cpu" if method == "zerofilled" else device)
        except WeightsUnavailable as error:
            if str(options.weights) in str(error):
                raise
            raise WeightsUnavailable(f"{options.weights}: {error}") from error   # the note must name the file
    return factory
