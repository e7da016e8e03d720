"""The challenge run: discover, shard, reconstruct every file, settle failed outputs, report.

The run's parts, one concept each: challenge.run_setup (options, device, shard, output root),
challenge.discovery (which files), challenge.pipeline (the three threads below), challenge.sanitise (inputs made
safe to reconstruct), challenge.fallback (the method chain and the one out-of-memory policy),
challenge.output_safety (where and how outputs are written), challenge.report (the rows, the table, the JSON).

Every output is checked in memory (finite, not all zero, right shape), written to a temporary file, flushed,
re-read (key, float32, exact expected shape) and only then renamed into place; its row becomes valid only after
that (challenge.output_safety). A failing primary method falls back to CG-SENSE, then zero-filled, so a file
only fails when its input cannot be read or holds no data, or its output cannot be written. Nothing is ever
written under the input root or onto an input (links resolved); temporary files live beside their final output
and never end in ``.mat``.
"""
import logging
import os
import time
from pathlib import Path

from challenge import matio, output_safety, rules
from challenge.discovery import discover
from challenge.fallback import MethodChain, ReconstructorFactory
from challenge.pipeline import Pipeline
from challenge.report import FAILED, RESUMED, FileResult, RunReport, log_outcome, report_name
from challenge.run_setup import (RunOptions, RunSetupError, check_device, check_shard, prepare_output_root,
                                 shard_from_environment)
from model.reconstruction import Reconstructor, WeightsUnavailable, build_reconstructor, resolve_device

__all__ = ["RunOptions", "RunSetupError", "run"]

log = logging.getLogger(__name__)


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
    check_shard(shard)
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
    output_safety.remove_temporary_files(output_root, input_root, shard, mine)
    todo, expected_shapes = [], {}
    for job in mine:
        problem = guard.problem(output_root / job.output_relative)
        if problem is not None:
            refused = FileResult.for_job(job)
            refused.reason = f"{problem}; nothing written (an output must never replace an input)"
            log_outcome(refused)
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
        pipeline = Pipeline(options, chain, guard)
        report.files.extend(pipeline.run(todo))
        expected_shapes = pipeline.expected_shapes
    _settle_failed_outputs(report, output_root, expected_shapes, guard)
    output_safety.remove_temporary_files(output_root, input_root, shard, mine)
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
    result = FileResult.for_job(job)
    result.outcome, result.method = RESUMED, "earlier run"
    log_outcome(result)
    return result


def _discovery_failure(input_root: Path, error) -> FileResult:
    path, reason = error
    try:
        relative = str(Path(path).relative_to(input_root))
    except ValueError:
        relative = str(path)
    return FileResult(input_relative=relative, output_relative=None, outcome=FAILED,
                      reason=f"{path}: {reason}")


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
                                       hard_dc=options.hard_dc,
                                       device="cpu" if method == "zerofilled" else device)
        except WeightsUnavailable as error:
            if str(options.weights) in str(error):
                raise
            raise WeightsUnavailable(f"{options.weights}: {error}") from error   # the note must name the file
    return factory
