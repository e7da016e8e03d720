"""The img4ranking array each year's scorer reads: MATLAB axis order and singleton rules, full size (test
phase) or the organisers' run4Ranking crop (validation phase), with MATLAB's rounding and centring
(model.matlab). Spec: ../shared/docs/cmrxrecon-format.md (section 5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from challenge.rules.paths import Job
from model.matlab import centred, matlab_round, matlab_shape

OUTPUT_KEY = "img4ranking"

# run4Ranking frame classes.
CINE_LIKE = "cine"          # first 3 frames
MAPPING_LIKE = "mapping"    # all weightings
SINGLE_FRAME = "single"     # 4-D contrasts: frame 1


def frame_class(year: int, base: str) -> str:
    """run4Ranking's frame rule for a file: CINE_LIKE, MAPPING_LIKE or SINGLE_FRAME (substring tests as in
    the organisers' MATLAB)."""
    if year == 2023:
        return CINE_LIKE if base in ("cine_lax", "cine_sax") else MAPPING_LIKE
    if year == 2024:
        if "blackblood" in base:
            return SINGLE_FRAME
        return MAPPING_LIKE if ("T1map" in base or "T2map" in base) else CINE_LIKE
    if year == 2025:
        if any(s in base for s in ("blackblood", "T1w", "T2w")):
            return SINGLE_FRAME
        mapping = ("T1map", "T2map", "T2smap", "T1mappost", "T1rho")
        return MAPPING_LIKE if any(s in base for s in mapping) else CINE_LIKE
    raise ValueError(f"unsupported challenge year {year}")


@dataclass(frozen=True)
class _Selection:
    """Index ranges into an (nt, nz, ny, nx) image."""
    frames: range
    slices: range
    y: range
    x: range

    @property
    def matlab_shape(self) -> tuple[int, ...]:
        return matlab_shape((len(self.x), len(self.y), len(self.slices), len(self.frames)))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(nt, nz, ny, nx) -> MATLAB order (nx', ny'[, nz'[, nt']]) float32."""
        part = image[self.frames.start:self.frames.stop, self.slices.start:self.slices.stop,
                     self.y.start:self.y.stop, self.x.start:self.x.stop]
        return np.ascontiguousarray(part.transpose(3, 2, 1, 0), dtype=np.float32).reshape(self.matlab_shape)


def _central(length: int, size: int) -> range:
    """MATLAB crop.m's kept indices when cropping an axis of ``length`` to ``size`` (model.matlab.centred)."""
    kept = centred(length, size)
    return range(kept.start, kept.stop)


def _selection(year: int, base: str, dims: tuple[int, int, int, int], has_time_axis: bool,
               crop: bool) -> _Selection:
    nt, nz, ny, nx = dims
    if not has_time_axis and nt != 1:
        raise ValueError(f"{base}: a file without a time axis must be read as nt = 1, got nt = {nt}")
    if not crop:
        return _Selection(range(nt), range(nz), range(ny), range(nx))
    # run4Ranking: central two slices (all if fewer than 3), frames by class, central nx/3 x ny/2.
    # Where the MATLAB would fail (2023 with nz < 3, cine-like with nt < 3) we keep what exists.
    centre = matlab_round(nz / 2)
    slices = range(nz) if nz < 3 else range(centre - 2, centre)
    kind = frame_class(year, base)
    if kind == SINGLE_FRAME:
        frames = range(1)
    elif kind == MAPPING_LIKE:
        frames = range(nt)
    else:
        frames = range(min(3, nt))
    return _Selection(frames, slices, _central(ny, matlab_round(ny / 2)), _central(nx, matlab_round(nx / 3)))


def run4ranking(year: int, base: str, image: np.ndarray, has_time_axis: bool) -> np.ndarray:
    """The organisers' run4Ranking for `year` on a magnitude image (nt, nz, ny, nx) (nt = 1 for 4-D files):
    central slices, frames by class, central round(nx/3) x round(ny/2) -> MATLAB order float32 with MATLAB's
    singleton rules, e.g. (nx', ny', 2, 3), (nx', ny', 1, nt'), (nx', ny', 2) for single-frame contrasts."""
    _check_image(base, image)
    return _selection(year, base, image.shape, has_time_axis, crop=True).apply(image)


def to_output_array(job: Job, image: np.ndarray, has_time_axis: bool = True, *, crop: bool = False) -> np.ndarray:
    """Magnitude image (nt, nz, ny, nx) -> the img4ranking array in MATLAB order (nx, ny, nz, nt) float32.

    crop=False (test phase): full size, e.g. (nx, ny, nz, nt), (nx, ny, 1, nt) for one slice, (nx, ny, nz) for
    4-D files. crop=True (validation): run4ranking."""
    _check_image(job.name, image)
    return _selection(job.year, job.base, image.shape, has_time_axis, crop).apply(image)


def _check_image(name: str, image: np.ndarray) -> None:
    if image.ndim != 4:
        raise ValueError(f"{name}: image must be (nt, nz, ny, nx), got shape {image.shape}")
    if np.iscomplexobj(image):
        raise TypeError(f"{name}: the output must be a magnitude image, got dtype {image.dtype}")


def expected_output_shape(job: Job, kspace_shape: Sequence[int], has_time_axis: bool,
                          crop: bool = False) -> tuple[int, ...]:
    """Shape that to_output_array gives for k-space of h5py shape (nt, nz, nc, ny, nx), or (nz, nc, ny, nx) for
    a file without a time axis."""
    shape = tuple(kspace_shape)
    if len(shape) == 4 and not has_time_axis:
        shape = (1, *shape)
    if len(shape) != 5:
        raise ValueError(f"{job.name}: k-space shape must be (nt, nz, nc, ny, nx), got {shape}")
    nt, nz, _, ny, nx = shape
    return _selection(job.year, job.base, (nt, nz, ny, nx), has_time_axis, crop).matlab_shape
