"""The run report: one row per input file, a per-(modality, pattern, AF) table, the success rate w.

w = N_valid / N_total as the 2024/2025 scorers define it: every file the organisers expect (every file to
reconstruct, including inputs that could not be read or parsed) counts in N_total; a file counts as valid when
its output was written and re-read with the expected key, dtype, shape and finite, not-all-zero values.
The table goes to stdout (the only log the organisers see); the same content as JSON into the output root.
"""
from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from challenge.rules import Job

log = logging.getLogger(__name__)

REPORT_NAME = "run_report.json"

# FileResult.outcome values; the first three are valid outputs.
BY_MODEL = "model"          # the primary method's output
BY_FALLBACK = "fallback"    # a classical fallback's output (primary failed or gave an invalid image)
RESUMED = "resumed"         # a valid output of an earlier run, kept by --resume
FAILED = "failed"
VALID_OUTCOMES = (BY_MODEL, BY_FALLBACK, RESUMED)


@dataclass
class FileResult:
    input_relative: str                 # path relative to the input root
    output_relative: str | None         # path relative to the output root (None: the input was not parsed)
    modality: str = "?"
    pattern: str = "?"
    acceleration: int | None = None
    outcome: str = FAILED
    method: str | None = None           # the method whose output was written
    seconds: float = 0.0                # read + reconstruct + write
    read_seconds: float = 0.0           # reading and checking the input (prefetch thread)
    reconstruct_seconds: float = 0.0    # the reconstructor(s), fallbacks included
    write_seconds: float = 0.0          # writing and re-validating the output (writer thread)
    reason: str | None = None           # why it failed or fell back
    notes: list[str] = field(default_factory=list)  # warnings: derived mask, non-finite k-space, ...

    @classmethod
    def for_job(cls, job: Job) -> FileResult:
        """The row of ``job`` before anything happened to it (FAILED until its output is written)."""
        return cls(input_relative=str(job.relative_path), output_relative=str(job.output_relative),
                   modality=job.modality, pattern=job.pattern, acceleration=job.acceleration)

    @property
    def valid(self) -> bool:
        return self.outcome in VALID_OUTCOMES

    @property
    def group(self) -> tuple[str, str, str]:
        af = "?" if self.acceleration is None else str(self.acceleration)
        return self.modality, self.pattern, af


def log_outcome(result: FileResult) -> None:
    """One line per file on stdout: outcome, method, seconds, input and why it failed or fell back."""
    detail = f" ({result.reason})" if result.reason else ""
    level = logging.WARNING if result.outcome in (FAILED, BY_FALLBACK) else logging.INFO
    log.log(level, "%-8s %-10s %7.1f s  %s%s", result.outcome, result.method or "-", result.seconds,
            result.input_relative, detail)


@dataclass
class GroupRow:
    modality: str
    pattern: str
    acceleration: str
    files: int = 0
    by_model: int = 0
    by_fallback: int = 0
    resumed: int = 0
    failed: int = 0
    seconds: float = 0.0


@dataclass
class RunReport:
    input_root: str
    output_root: str
    requested_method: str
    primary_method: str
    shard: tuple[int, int]
    files: list[FileResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # run-wide messages (weights unavailable, ...)
    error: str | None = None                           # run-wide failure (e.g. no files to reconstruct)
    seconds: float = 0.0                               # wall time of the run
    other_shards_files: int = 0                        # files the other shards of a sharded run hold

    @property
    def total(self) -> int:
        return len(self.files)

    @property
    def valid(self) -> int:
        return sum(result.valid for result in self.files)

    @property
    def success_rate(self) -> float | None:
        """w = N_valid / N_total; None when this shard had nothing to do."""
        return self.valid / self.total if self.total else None

    @property
    def exit_code(self) -> int:
        """0 only when every file to reconstruct has a valid output (w == 1) and the run had no error."""
        return 0 if self.error is None and self.valid == self.total else 1

    def groups(self) -> list[GroupRow]:
        rows: dict[tuple[str, str, str], GroupRow] = {}
        for result in self.files:
            row = rows.setdefault(result.group, GroupRow(*result.group))
            row.files += 1
            row.seconds += result.seconds
            row.by_model += result.outcome == BY_MODEL
            row.by_fallback += result.outcome == BY_FALLBACK
            row.resumed += result.outcome == RESUMED
            row.failed += result.outcome == FAILED
        return [rows[key] for key in sorted(rows, key=_group_sort_key)]

    def failures(self) -> list[FileResult]:
        return [result for result in self.files if not result.valid]

    def fallbacks(self) -> list[FileResult]:
        return [result for result in self.files if result.outcome == BY_FALLBACK]

    def format_text(self) -> str:
        header = ("modality", "pattern", "AF", "files", "by model", "by fallback", "resumed", "failed", "seconds")
        body = [(row.modality, row.pattern, row.acceleration, row.files, row.by_model, row.by_fallback,
                 row.resumed, row.failed, f"{row.seconds:.1f}") for row in self.groups()]
        totals = ("all", "", "", self.total, *_outcome_counts(self.files), f"{sum(r.seconds for r in self.files):.1f}")
        lines = [
            f"CMRxRecon run report: {self.input_root} -> {self.output_root}",
            f"method: {self.primary_method}" + (f" (requested {self.requested_method})"
                                                if self.primary_method != self.requested_method else "")
            + (f", shard {self.shard[0]}/{self.shard[1]} (this shard's files only; the other "
               f"{self.shard[1] - 1} shard(s) hold {self.other_shards_files} files)" if self.shard[1] > 1 else ""),
            *(f"note: {note}" for note in self.notes),
            *_format_table(header, body, totals),
        ]
        rate = self.success_rate
        lines.append(f"success rate w = {self.valid}/{self.total}"
                     + (f" = {rate:.4f}" if rate is not None else "") + f", wall time {self.seconds:.1f} s")
        for result in self.fallbacks():
            lines.append(f"fallback {result.method}: {result.input_relative}: {result.reason}")
        for result in self.failures():
            lines.append(f"FAILED: {result.input_relative}: {result.reason}")
        if self.error:
            lines.append(f"ERROR: {self.error}")
        lines.append(f"exit code {self.exit_code}")
        return "\n".join(lines)

    def to_json(self, rows: bool = True) -> dict:
        """The report as JSON; ``rows`` False leaves out the per-file rows (a compact report, flagged)."""
        return {
            "input_root": self.input_root,
            "output_root": self.output_root,
            "requested_method": self.requested_method,
            "primary_method": self.primary_method,
            "shard": list(self.shard),
            "other_shards_files": self.other_shards_files,
            "files_total": self.total,
            "files_valid": self.valid,
            "success_rate": self.success_rate,
            "exit_code": self.exit_code,
            "error": self.error,
            "seconds": self.seconds,
            "notes": self.notes,
            "groups": [asdict(row) for row in self.groups()],
            "failures": [{"file": r.input_relative, "reason": r.reason} for r in self.failures()],
            "files": [asdict(result) for result in self.files] if rows else [],
            **({} if rows else {"compact": "the per-file rows did not fit on the disk; see the run's stdout"}),
        }

    def write_json(self, path: Path, rows: bool = True) -> None:
        """Atomic (temp file + flush + rename) so that a reader never sees half a report; on failure (disk
        full) the temporary file is removed and the error raised."""
        temporary = path.with_name(path.name + ".tmp")
        try:
            with open(temporary, "w") as stream:
                stream.write(json.dumps(self.to_json(rows), indent=1))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            try:
                temporary.unlink()
            except OSError:
                pass
            raise

    def save(self, path: Path) -> None:
        """write_json that cannot end the run: when the full report cannot be written (disk full, a folder in
        the way) a compact one without the per-file rows is tried, and failing that an earlier run's report at
        ``path`` is renamed aside so that it cannot be read as this run's; the error goes into ``self.error``
        and so into the summary on stdout and the exit status."""
        try:
            self.write_json(path)
            return
        except Exception as error:
            self.error = (f"the run report could not be written to {path}: {type(error).__name__}: {error}"
                          + (f"; earlier error: {self.error}" if self.error else ""))
        try:
            self.write_json(path, rows=False)
            return
        except Exception:
            pass
        try:
            if path.is_file():
                os.replace(path, path.with_name(path.name + ".stale"))
                self.error += f"; the earlier run's report was renamed to {path.name}.stale"
        except OSError:
            pass


def report_name(shard: tuple[int, int]) -> str:
    """run_report.json; one file per shard when several processes share one output root."""
    index, count = shard
    return REPORT_NAME if count == 1 else f"run_report.shard{index}of{count}.json"


def _outcome_counts(results: list[FileResult]) -> tuple[int, int, int, int]:
    counts = defaultdict(int)
    for result in results:
        counts[result.outcome] += 1
    return counts[BY_MODEL], counts[BY_FALLBACK], counts[RESUMED], counts[FAILED]


def _group_sort_key(key: tuple[str, str, str]):
    modality, pattern, af = key
    return modality, pattern, int(af) if af.isdigit() else 10**6


def _format_table(header: tuple, body: list[tuple], totals: tuple) -> list[str]:
    rows = [tuple(str(cell) for cell in row) for row in (header, *body, totals)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row):
        # text columns left-aligned, counts right-aligned
        return "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
    rule = "  ".join("-" * w for w in widths)
    return [line(rows[0]), rule, *(line(row) for row in rows[1:-1]), rule, line(rows[-1])]
