"""Find every file to reconstruct under an input root of any depth.

Follows directory symlinks but visits each directory (device, inode) once, so loops and duplicate links end;
real directories are walked before symlinked ones, so a file reachable both ways keeps its real path.
Unreadable directories and undecodable names are recorded, never raised.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from challenge.rules import Job, classify


class InputRootError(Exception):
    """The input root does not exist or is not a directory."""


@dataclass
class Discovery:
    root: Path
    jobs: list[Job] = field(default_factory=list)                        # sorted by relative path
    skipped: list[tuple[Path, str]] = field(default_factory=list)        # (path, reason)
    errors: list[tuple[Path, str]] = field(default_factory=list)         # (path, reason)


def discover(input_root: Path | str) -> Discovery:
    root = Path(os.path.abspath(input_root))
    if not root.exists():
        raise InputRootError(f"input root {root} does not exist")
    if not root.is_dir():
        raise InputRootError(f"input root {root} is not a directory")
    found = Discovery(root)
    visited: set[tuple[int, int]] = set()
    real_dirs: list[Path] = [root]
    linked_dirs: list[Path] = []
    while real_dirs or linked_dirs:
        directory = real_dirs.pop() if real_dirs else linked_dirs.pop()
        try:
            info = directory.stat()
        except OSError as error:
            found.errors.append((directory, f"cannot stat directory: {error.strerror or error}"))
            continue
        if (info.st_dev, info.st_ino) in visited:
            found.skipped.append((directory, "directory already visited (symlink loop or duplicate link)"))
            continue
        visited.add((info.st_dev, info.st_ino))
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name, reverse=True)  # popped in name order
        except OSError as error:
            found.errors.append((directory, f"cannot read directory: {error.strerror or error}"))
            continue
        for entry in entries:
            path = directory / entry.name
            if not _decodable(entry.name):
                found.errors.append((path, "name is not valid UTF-8"))
                continue
            try:
                is_dir = entry.is_dir()                  # follows symlinks
                is_file = not is_dir and entry.is_file()
                is_link = entry.is_symlink()
            except OSError as error:
                found.errors.append((path, f"cannot stat: {error.strerror or error}"))
                continue
            if is_dir:
                (linked_dirs if is_link else real_dirs).append(path)
            elif is_file:
                parsed = classify(root, path)
                if isinstance(parsed, Job):
                    found.jobs.append(parsed)
                elif _is_upper_case_input(root, path):
                    # an input in all but the case of its extension: the organisers expect its output
                    found.errors.append((path, f"extension {path.suffix!r} is not the challenge's '.mat' "
                                               f"(names are case-sensitive); not reconstructed"))
                else:
                    found.skipped.append((path, parsed))
            elif isinstance(classify(root, path), Job):
                # named like an input the organisers expect a reconstruction of: it must count against w
                found.errors.append((path, "broken symlink or not a regular file"))
            else:
                found.skipped.append((path, "broken symlink or not a regular file"))
    found.jobs.sort(key=lambda job: str(job.relative_path))
    _drop_output_collisions(found)
    found.skipped.sort(key=lambda item: str(item[0]))
    found.errors.sort(key=lambda item: str(item[0]))
    return found


def _is_upper_case_input(root: Path, path: Path) -> bool:
    suffix = path.suffix
    return (suffix.lower() == ".mat" and suffix != ".mat"
            and isinstance(classify(root, path.with_name(path.stem + ".mat")), Job))


def _decodable(name: str) -> bool:
    # Undecodable bytes come back from the OS as lone surrogates (PEP 383).
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _drop_output_collisions(found: Discovery) -> None:
    """Two inputs must not write the same output file; the first in sorted order keeps it."""
    owners: dict[str, Job] = {}
    kept = []
    for job in found.jobs:
        owner = owners.setdefault(str(job.output_relative), job)
        if owner is job:
            kept.append(job)
        else:
            found.errors.append((job.input_path, f"same output path {job.output_relative} as {owner.relative_path}"))
    found.jobs = kept
