"""Slice-lazy reading of training k-space: an index of (file, shape, key) built once, and a reader that returns
one slice (every frame of it) as an HDF5 hyperslab, never a whole volume.

A release-sized cine_sax file is 12 x 10 x 10 x 246 x 512 complex64 (1.2 GB); one slice of it is 120 MB. The
slice's frames are all read because the sample needs them: the view-shared k-space is the slice's time average
and the SSIM range is the slice's peak over every frame (training.dataset). MAT v5 files are not HDF5 and cannot
be read by slice; they are read whole, at most ``v5_volumes`` of them kept per process (an LRU), and the log
says so once per file.
"""
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from challenge.matio import MatReadError, is_v73, kspace_info, read_kspace, read_kspace_slice
from training.layouts import TrainingFile

log = logging.getLogger("genre.train.data")
INDEX_VERSION = 1


class SliceReader:
    """Shape of each file (from the index, else read from its header once) and its slices on demand."""

    def __init__(self, shapes: dict[Path, tuple[tuple[int, ...], str]] | None = None, v5_volumes: int = 2):
        self.shapes: dict[Path, tuple[tuple[int, ...], str]] = dict(shapes or {})
        self.v5_volumes = v5_volumes
        self._v5: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._hdf5: dict[Path, bool] = {}

    def shape(self, path: Path) -> tuple[int, ...]:
        """(nt, nz, nc, ny, nx) of a file (nt = 1 for 4-D files)."""
        if path not in self.shapes:
            shape, _, key = kspace_info(path)
            self.shapes[path] = (tuple(shape), key)
        return self.shapes[path][0]

    def read_slice(self, path: Path, z: int) -> np.ndarray:
        """Every frame of slice z as (nt, nc, ny, nx) complex64."""
        self.shape(path)
        key = self.shapes[path][1]
        if path not in self._hdf5:
            self._hdf5[path] = is_v73(path)
        if self._hdf5[path]:
            return read_kspace_slice(path, z, key)
        if path not in self._v5:
            log.info("%s: MAT v5 (not HDF5), read whole and kept in this process's LRU of %d volumes",
                     path, self.v5_volumes)
            self._v5[path] = read_kspace(path, key).kspace
            while len(self._v5) > self.v5_volumes:
                self._v5.popitem(last=False)
        self._v5.move_to_end(path)
        return np.ascontiguousarray(self._v5[path][:, z])


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def build_index(files: list[TrainingFile], cache: Path | None = None) -> tuple[list[TrainingFile], SliceReader]:
    """(the readable files, a reader that knows their shapes). Shapes come from ``cache`` (JSON, e.g. beside the
    run) where a file's size and mtime match, else from its header; the cache is rewritten when anything new was
    read. A file whose header cannot be read is skipped with a log line naming it and the reason."""
    known = {}
    if cache is not None and cache.exists():
        try:
            stored = json.loads(cache.read_text())
            if stored.get("version") == INDEX_VERSION:
                known = {e["path"]: e for e in stored["files"]}
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s: unreadable index (%s), rebuilt", cache, error)
    entries, readable, shapes, read_new = [], [], {}, False
    for file in files:
        entry = known.get(str(file.path))
        try:
            stamp = _stamp(file.path)
            if entry is None or entry["stamp"] != stamp:
                shape, _, key = kspace_info(file.path)
                entry, read_new = {"path": str(file.path), "stamp": stamp, "shape": list(shape), "key": key}, True
        except (MatReadError, OSError) as error:
            log.warning("skipped %s: %s", file.path, error)
            continue
        entries.append(entry)
        readable.append(file)
        shapes[file.path] = (tuple(entry["shape"]), entry["key"])
    if cache is not None and (read_new or len(entries) != len(known)):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": INDEX_VERSION, "files": entries}))
        os.replace(tmp, cache)
    slices = sum(shapes[f.path][0][1] for f in readable)
    log.info("training index: %d files, %d slices (%d skipped)", len(readable), slices, len(files) - len(readable))
    return readable, SliceReader(shapes)
