"""Where an output may be written, how it is written, and what happens to a stale file at a failed input's path.

Rules (issue 17):
- every resolved output path (symlinked folders followed) is checked against every input file and mask and
  against the input root before anything is written; an output that would land on an input or under the input
  root is refused and its file fails;
- an existing file at an output path is replaced only by a new output that has been written, flushed and
  re-read as valid (temporary file, validated, then renamed over it); a failed write leaves what was there;
- a stale file at the path of an input that failed is kept only when it validates against that input's
  expected shape; otherwise it is moved (not deleted) into MOVED_ASIDE in the output root, renamed so that
  no scorer globbing ``*.mat`` can take it for a submission;
- temporary files of interrupted writes are removed before and after a run (remove_temporary_files).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from challenge import matio, rules
from challenge.report import report_name

log = logging.getLogger(__name__)

MOVED_ASIDE = "invalid_outputs_moved_aside"     # folder in the output root
MOVED_SUFFIX = ".invalid"                       # appended to a moved file's name (no longer *.mat)


class OutputRefused(Exception):
    """An output path that must not be written; the message names the path and the reason."""


class InputGuard:
    """The resolved input root and every resolved input and mask file of a run."""

    def __init__(self, input_root: Path, files: list[Path]):
        self.root = os.path.realpath(input_root)
        self.files = {os.path.realpath(path) for path in files}

    def problem(self, output_path: Path) -> str | None:
        """Why ``output_path`` must not be written, or None."""
        real = os.path.realpath(output_path)
        if real in self.files:
            return f"output path {output_path} resolves to the input file {real}"
        if real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep):
            return f"output path {output_path} resolves to {real}, inside the input root {self.root}"
        return None


def write_output(path: Path, output: np.ndarray, expected_shape: tuple[int, ...], guard: InputGuard) -> None:
    """Write ``output`` to ``path`` so that the file there is replaced only by a re-read, valid output.

    Raises OutputRefused, OSError (disk full, a folder or file in the way) or matio.OutputInvalid; in every
    failure whatever was at ``path`` before is still there and no temporary file is left.
    """
    path = Path(path)
    problem = guard.problem(path)
    if problem is not None:
        raise OutputRefused(problem)
    path.parent.mkdir(parents=True, exist_ok=True)    # NotADirectoryError/FileExistsError when a file is in the way
    if path.is_dir():
        raise OutputRefused(f"a folder sits at the output path {path}; it is left as it is")
    problem = guard.problem(path)                       # again: the mkdir may have resolved a link
    if problem is not None:
        raise OutputRefused(problem)
    matio.write_output(path, output, check=lambda written: matio.validate_output(written, expected_shape))


def stale_output_action(output_root: Path, relative: str, expected_shape: tuple[int, ...] | None,
                        guard: InputGuard) -> str | None:
    """For a failed input: keep a file at its output path that validates, move any other aside.
    Returns a note for the file's row, or None when nothing was there."""
    path = Path(output_root) / relative
    if guard.problem(path) is not None or not (path.is_file() or path.is_symlink()) or path.is_dir():
        return None
    if expected_shape is not None:
        try:
            matio.validate_output(path, expected_shape)
        except Exception as error:
            why = str(error)
        else:
            return (f"an earlier output at {path} validates and was kept; it is not this run's reconstruction "
                    f"and is not counted as valid")
    else:
        why = "the expected shape is unknown because the input failed"
    target = moved_aside_path(output_root, relative)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
    except OSError as error:
        return f"a stale file at {path} ({why}) could not be moved aside: {error}"
    return f"a stale file at {path} ({why}) was moved aside to {target}"


def moved_aside_path(output_root: Path, relative: str) -> Path:
    """A free name under MOVED_ASIDE for ``relative`` (never ending in .mat)."""
    base = Path(output_root) / MOVED_ASIDE / (str(relative) + MOVED_SUFFIX)
    candidate, number = base, 1
    while candidate.exists() or candidate.is_symlink():
        candidate = base.with_name(f"{base.name}.{number}")
        number += 1
    return candidate


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
