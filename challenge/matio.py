"""Reading and writing the challenge's MAT files.

In memory every array is in h5py order: k-space (nt, nz, nc, ny, nx) complex64, masks (ny, nx) or
(nt, ny, nx) bool. MAT v7.3 files (HDF5) already present that order through h5py; MAT v5 files (scipy) present
MATLAB order and are transposed here. Outputs are MAT v5 in MATLAB order (``rules.to_output_array``), the one
format every official loader reads identically (cmrxrecon-format.md §3.4).
"""
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5storage
import numpy as np
import scipy.io

from challenge.rules import OUTPUT_KEY

_MATLAB_META = {"__header__", "__version__", "__globals__"}


class MatReadError(Exception):
    """An input MAT file that cannot be used; the message names the file and the reason."""


class OutputInvalid(Exception):
    """A written output that fails validation; the message names the file and the reason."""


@dataclass
class Volume:
    kspace: np.ndarray                 # (nt, nz, nc, ny, nx) complex64
    has_time_axis: bool                # False for 4-D files (nt = 1 added here)
    warnings: list[str] = field(default_factory=list)


def _is_hdf5(path: Path) -> bool:
    try:
        return h5py.is_hdf5(path)
    except OSError as error:
        raise MatReadError(f"{path}: cannot open ({error})") from None


def is_v73(path: Path) -> bool:
    """Whether a MAT file is v7.3 (HDF5), i.e. readable by hyperslab."""
    return _is_hdf5(Path(path))


def _choose_key(path: Path, keys: list[str], key: str | None) -> str:
    if key is not None:
        if key not in keys:
            raise MatReadError(f"{path}: no variable {key!r} (variables: {', '.join(keys) or 'none'})")
        return key
    if len(keys) == 1:
        return keys[0]
    raise MatReadError(f"{path}: cannot tell which variable holds the data (variables: {', '.join(keys) or 'none'})")


def _hdf5_keys(handle: h5py.File) -> list[str]:
    return sorted(k for k in handle.keys() if not k.startswith("#") and isinstance(handle[k], h5py.Dataset))


def _v5_variables(path: Path) -> dict:
    try:
        variables = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises ValueError/TypeError/MatReadError on junk
        raise MatReadError(f"{path}: not a readable MAT file ({type(error).__name__}: {error})") from None
    return {k: v for k, v in variables.items() if k not in _MATLAB_META}


def _complex_layout(dtype: np.dtype) -> np.dtype | None:
    """The complex dtype with the same bytes as a (real, imag) compound, if there is one."""
    real, imag = dtype.fields["real"], dtype.fields["imag"]
    part = real[0]
    if (len(dtype.names) == 2 and part == imag[0] and part in (np.dtype("<f4"), np.dtype("<f8"))
            and real[1] == 0 and imag[1] == part.itemsize and dtype.itemsize == 2 * part.itemsize):
        return np.dtype(np.complex64 if part.itemsize == 4 else np.complex128)
    return None


def _to_complex(path: Path, data: np.ndarray, notes: list[str]) -> np.ndarray:
    if data.dtype.names:
        if not {"real", "imag"} <= set(data.dtype.names):
            raise MatReadError(f"{path}: compound data without real/imag fields ({data.dtype})")
        native = _complex_layout(data.dtype)
        if native is not None and data.flags.c_contiguous:
            return data.view(native).astype(np.complex64, copy=False)   # no copy for MATLAB single
        return (data["real"] + 1j * data["imag"]).astype(np.complex64)
    if np.iscomplexobj(data):
        return data.astype(np.complex64)
    if not np.issubdtype(data.dtype, np.number):
        raise MatReadError(f"{path}: data of type {data.dtype} is not numeric")
    notes.append(f"{path}: real-valued k-space, read with zero imaginary part")
    return data.astype(np.complex64)


def _as_five_d(path: Path, shape: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    if len(shape) == 5:
        return shape, True
    if len(shape) == 4:
        return (1, *shape), False
    raise MatReadError(f"{path}: k-space has {len(shape)} dimensions {shape}; expected 4 or 5")


@contextmanager
def _hdf5_variable(path: Path, key: str | None):
    """(dataset, key) of a v7.3 file, open while the block runs; HDF5 failures there become MatReadError."""
    try:
        with h5py.File(path, "r") as handle:
            key = _choose_key(path, _hdf5_keys(handle), key)
            yield handle[key], key
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise MatReadError(f"{path}: corrupt or truncated HDF5 ({error})") from None


def _v5_variable(path: Path, key: str | None) -> tuple[np.ndarray, str]:
    """(array in MATLAB order, key) of a v5 file."""
    variables = _v5_variables(path)
    key = _choose_key(path, sorted(variables), key)
    return np.asarray(variables[key]), key


def kspace_info(path: Path, key: str | None = None) -> tuple[tuple[int, ...], bool, str]:
    """(shape as (nt, nz, nc, ny, nx), has_time_axis, key) without reading v7.3 data."""
    path = Path(path)
    if _is_hdf5(path):
        with _hdf5_variable(path, key) as (dataset, key):
            shape = tuple(dataset.shape)
    else:
        data, key = _v5_variable(path, key)
        shape = tuple(reversed(data.shape))
    five, has_time = _as_five_d(path, shape)
    return five, has_time, key


def read_kspace(path: Path, key: str | None = None, slices: slice | None = None) -> Volume:
    """k-space of a v7.3 or v5 file as (nt, nz, nc, ny, nx) complex64; ``slices`` selects along nz."""
    path = Path(path)
    notes: list[str] = []
    selection = slices if slices is not None else slice(None)
    if _is_hdf5(path):
        with _hdf5_variable(path, key) as (dataset, key):
            _, has_time = _as_five_d(path, tuple(dataset.shape))
            data = dataset[:, selection] if has_time else dataset[selection]
    else:
        data, key = _v5_variable(path, key)
        _, has_time = _as_five_d(path, tuple(reversed(data.shape)))
        data = data.T
        data = data[:, selection] if has_time else data[selection]
    kspace = _to_complex(path, np.asarray(data), notes)
    if not has_time:
        kspace = kspace[None]
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return Volume(kspace=np.ascontiguousarray(kspace), has_time_axis=has_time, warnings=notes)


def read_kspace_slice(path: Path, z: int, key: str | None = None) -> np.ndarray:
    """Every frame of slice ``z`` of a v7.3 file as (nt, nc, ny, nx) complex64 (nt = 1 for 4-D files), read as
    one HDF5 hyperslab: the rest of the volume is never read.

    MAT v5 files are not HDF5 and cannot be read by slice: MatReadError says so (read them with read_kspace)."""
    path = Path(path)
    if not _is_hdf5(path):
        raise MatReadError(f"{path}: not a MAT v7.3 (HDF5) file, so it cannot be read one slice at a time")
    notes: list[str] = []
    with _hdf5_variable(path, key) as (dataset, key):
        (nt, nz, *_), has_time = _as_five_d(path, tuple(dataset.shape))
        if not 0 <= z < nz:
            raise MatReadError(f"{path}: slice {z} is outside 0..{nz - 1}")
        data = dataset[:, z] if has_time else dataset[z][None]
    return np.ascontiguousarray(_to_complex(path, np.asarray(data), notes))


def read_mask(path: Path, key: str | None = None) -> np.ndarray:
    """Sampling mask as bool (ny, nx) or (nt, ny, nx)."""
    path = Path(path)
    if _is_hdf5(path):
        with _hdf5_variable(path, key) as (dataset, key):
            data = np.asarray(dataset[()])
    else:
        data = _v5_variable(path, key)[0].T
    if data.dtype.names or data.ndim not in (2, 3):
        raise MatReadError(f"{path}: mask must be a 2-D or 3-D numeric array, got {data.dtype} {data.shape}")
    return data != 0


_TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+\.mat)\.\d+\.tmp$")


def temporary_path(path: Path) -> Path:
    """Where an atomic write of ``path`` goes first: same folder, hidden, never named *.mat (a scorer globbing
    *.mat must not see a half-written file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def temporary_target(path: Path) -> Path | None:
    """The output a temporary file left by an interrupted atomic write was meant for, else None."""
    match = _TEMPORARY_NAME.match(path.name)
    return path.with_name(match["target"]) if match else None


def _atomic(path: Path, write, check=None) -> None:
    """Write through a temporary file in the same folder, flush it to disk, ``check(temporary)`` (re-read it),
    then rename over the target and make the rename durable. Any failure leaves the target as it was and
    removes the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        written = os.stat(tmp)
        os.replace(tmp, path)
        landed = os.stat(path)
        if (landed.st_dev, landed.st_ino) != (written.st_dev, written.st_ino):
            raise OSError(f"{path}: the renamed file is not the one written")
        _fsync_folder(path.parent)
    finally:
        try:
            if tmp.is_file() or tmp.is_symlink():
                tmp.unlink()
        except OSError:
            pass            # never hide the write's own error behind a cleanup error


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass                # some filesystems cannot fsync a folder; the rename itself has happened
    finally:
        os.close(descriptor)


def write_output(path: Path, array: np.ndarray, check=None) -> None:
    """``img4ranking`` as float32 MAT v5 (array already in MATLAB order), atomically; ``check(temporary)``
    runs on the flushed temporary file before it replaces anything at ``path``."""
    data = np.asarray(array, dtype=np.float32)
    _atomic(path, lambda tmp: scipy.io.savemat(tmp, {OUTPUT_KEY: data}, do_compression=False, format="5"), check)


def validate_output(path: Path, expected_shape: tuple[int, ...]) -> None:
    """Re-read an output as the scorers do; raise OutputInvalid unless it is exactly what they expect."""
    path = Path(path)
    try:
        variables = scipy.io.loadmat(path)
    except Exception as error:
        raise OutputInvalid(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if OUTPUT_KEY not in variables:
        raise OutputInvalid(f"{path}: no {OUTPUT_KEY!r} variable")
    data = variables[OUTPUT_KEY]
    if data.dtype != np.float32:
        raise OutputInvalid(f"{path}: dtype {data.dtype}, expected float32")
    if tuple(data.shape) != tuple(expected_shape):
        raise OutputInvalid(f"{path}: shape {tuple(data.shape)}, expected {tuple(expected_shape)}")
    if not np.isfinite(data).all():
        raise OutputInvalid(f"{path}: {int((~np.isfinite(data)).sum())} non-finite values")
    if not np.any(data):
        raise OutputInvalid(f"{path}: all zero")


def _write_v73(path: Path, key: str, array_h5order: np.ndarray, compress: bool = True) -> None:
    # hdf5storage writes MATLAB order and reverses it on disk, so hand it the transpose; `writes` (unlike
    # savemat) keeps the file name as given, and matlab_compatible adds the 512-byte MATLAB header.
    hdf5storage.writes({key: array_h5order.T}, filename=str(path), truncate_existing=True,
                       matlab_compatible=True, store_python_metadata=False, compress=compress)


def write_kspace_v73(path: Path, key: str, kspace: np.ndarray, compress: bool = True) -> None:
    """A genuine MATLAB v7.3 file as the organisers ship: h5py then sees ``kspace`` (h5py order) as a
    compound (real, imag) dataset of the same shape. ``compress``: gzip in small chunks (hdf5storage's
    default); False writes one contiguous dataset: k-space noise hardly compresses, and on a (12, 3, 6, 84, 160)
    volume the gzip made writing 35x and reading 6x slower."""
    _atomic(path, lambda tmp: _write_v73(tmp, key, np.asarray(kspace), compress))


def write_mask_v73(path: Path, key: str, mask: np.ndarray) -> None:
    """A mask as MATLAB double 0/1 in v7.3 (h5py order (ny, nx) or (nt, ny, nx)), as the generators save."""
    _atomic(path, lambda tmp: _write_v73(tmp, key, np.asarray(mask, dtype=np.float64)))


def write_kspace_v5(path: Path, key: str, kspace: np.ndarray) -> None:
    """k-space (h5py order) as a MAT v5 file in MATLAB order (a format the organisers do not use)."""
    data = np.asarray(kspace).T
    _atomic(path, lambda tmp: scipy.io.savemat(tmp, {key: data}, do_compression=False, format="5"))
