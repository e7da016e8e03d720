"""Every year-specific CMRxRecon rule (2023, 2024, 2025) in one place.

Path parsing (which files to reconstruct, their keys and masks), output paths, ACS size, the run4Ranking crop,
MATLAB rounding and singleton rules, expected output shapes, and the scorers' per-year conventions. A new
challenge year should only need changes here. Spec: ../shared/docs/cmrxrecon-format.md (sections 0-3, 5).

Paths are parsed from the file's side (nearest matching folder wins) over the whole absolute path, so the input
root may sit at any depth: a modality folder, ``MultiCoil``, a task folder, a patient folder or above.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from model.reconstruction import VolumeMeta

YEARS = (2023, 2024, 2025)
SPLITS = ("TrainingSet", "ValidationSet", "TestSet")
DEFAULT_SPLIT = "TestSet"
PATTERNS = ("Uniform", "ktUniform", "ktGaussian", "ktRadial")
MODALITIES = ("Cine", "Aorta", "Mapping", "Tagging", "Flow2d", "BlackBlood", "LGE", "Perfusion", "T1rho",
              "T1w", "T2w")
ACS_LINES = {2023: 24, 2024: 16, 2025: 20}
OUTPUT_KEY = "img4ranking"

# 2023: the four undersampled file names, their modality folder and task.
BASES_2023 = {"cine_lax": "Cine", "cine_sax": "Cine", "T1map": "Mapping", "T2map": "Mapping"}
TASKS_2023 = {"Cine": "Task1", "Mapping": "Task2"}

# Base-name prefix -> modality folder, for roots below the modality folder. T1mappost/T2smap start with a
# mapping prefix; order matters only where one prefix extends another.
_MODALITY_PREFIXES = (
    ("cine", "Cine"), ("aorta", "Aorta"), ("T1map", "Mapping"), ("T2map", "Mapping"), ("T2smap", "Mapping"),
    ("tagging", "Tagging"), ("flow2d", "Flow2d"), ("blackblood", "BlackBlood"), ("lge", "LGE"),
    ("perfusion", "Perfusion"), ("T1rho", "T1rho"), ("T1w", "T1w"), ("T2w", "T2w"),
)
_CYCLIC_PREFIXES = ("cine", "aorta", "tagging")

_KUS_NAME = re.compile(r"^(?P<base>.+)_kus_(?P<pattern>ktUniform|ktGaussian|ktRadial|Uniform)(?P<r>\d+)\.mat$")
_UNDERSAMPLE_2024 = re.compile(r"^UnderSample_(?P<task>Task[12])$")
_UNDERSAMPLE_2025 = re.compile(r"^UnderSample_(?P<task>Task[RS]\d+)$")
_ACC_FACTOR = re.compile(r"^AccFactor(?P<r>\d+)$")
# Output/GT trees: Task1, UnderSample_TaskR1, FullSample_TaskR1, ...
_TASK_DIR = re.compile(r"^(?:[A-Za-z]+_)?(?P<task>Task(?:[12]|[RS]\d+))$")

# run4Ranking frame classes.
CINE_LIKE = "cine"          # first 3 frames
MAPPING_LIKE = "mapping"    # all weightings
SINGLE_FRAME = "single"     # 4-D contrasts: frame 1


class PathRuleError(ValueError):
    """A path does not follow the year's layout where a rule needs it to."""


# ---------------------------------------------------------------------------------------------------------
# Jobs: one undersampled input file and everything derived from its path.

@dataclass(frozen=True)
class Job:
    """One undersampled k-space file to reconstruct, with every rule its path implies."""
    input_path: Path                    # as walked (symlinks not resolved)
    relative_path: PurePosixPath        # to the input root
    year: int
    split: str                          # 'ValidationSet' | 'TestSet' | 'TrainingSet'
    modality: str                       # 'Cine', 'Mapping', ... (the challenge's folder name)
    base: str                           # 'cine_sax', 'T1map', 'lge_lax_2ch', ...
    pattern: str                        # 'Uniform' | 'ktUniform' | 'ktGaussian' | 'ktRadial'
    acceleration: int
    task: str                           # 'Task1'/'Task2' (2023: cine/mapping), 'TaskR1', 'TaskS2', ...
    kspace_key: str
    mask_path: Path
    mask_key: str
    output_relative: PurePosixPath      # to the output root
    patient: str = ""
    center: str = ""                    # 2025 only
    vendor: str = ""                    # 2025 only

    @property
    def name(self) -> str:
        return str(self.relative_path)


def parse_job(input_root: Path, path: Path) -> Job | None:
    """The job for `path` (a file under `input_root`), or None if it is not a file to reconstruct."""
    parsed = classify(input_root, path)
    return parsed if isinstance(parsed, Job) else None


def classify(input_root: Path, path: Path) -> Job | str:
    """The job for `path`, or the reason (a short sentence) why it is not one."""
    root = Path(os.path.abspath(input_root))
    full = Path(os.path.abspath(path))
    try:
        relative = PurePosixPath(*full.relative_to(root).parts)
    except ValueError:
        raise PathRuleError(f"{full}: not under the input root {root}") from None
    name = full.name
    if name.startswith("._"):
        return "AppleDouble metadata file"
    if not name.endswith(".mat"):
        return "not a .mat file"
    if "_mask" in name:
        return "mask file"
    for folder in relative.parts[:-1]:
        if folder.startswith("Mask_") or folder == "FullSample":
            return f"inside a {folder} folder"
        if folder == "SingleCoil":
            return "single-coil data are not reconstructed"
    kus = _KUS_NAME.match(name)
    if kus:
        return _parse_kus(full, relative, kus)
    base = name[: -len(".mat")]
    if base in BASES_2023:
        return _parse_2023(full, relative, base)
    return "not an undersampled k-space file name"


def _parse_kus(full: Path, relative: PurePosixPath, kus: re.Match) -> Job | str:
    """2024/2025: .../{Modality}/{Split}/UnderSample_{Task}/[{Center}/{Vendor}/]P###/{base}_kus_{Pattern}{R}.mat"""
    parts = full.parts
    for i in range(len(parts) - 2, -1, -1):
        match_2024 = _UNDERSAMPLE_2024.match(parts[i])
        match_2025 = _UNDERSAMPLE_2025.match(parts[i])
        if match_2024 or match_2025:
            break
    else:
        return "no UnderSample_Task* folder above the file"
    year = 2024 if match_2024 else 2025
    task = (match_2024 or match_2025)["task"]
    base, pattern, acceleration = kus["base"], kus["pattern"], int(kus["r"])
    above, tail = parts[:i], parts[i + 1:]
    modality = _nearest(above, MODALITIES) or modality_of_base(base)
    if not modality:
        return f"no modality folder above the file and unknown base name {base!r}"
    split = _nearest(above, SPLITS) or DEFAULT_SPLIT
    site = tail[:-2]
    if year == 2024:
        output = PurePosixPath(modality, split, task, *tail)
    else:
        # The 2025 test scorer looks in {Task} first; validation keeps UnderSample_{Task}.
        task_dir = task if split == "TestSet" else f"UnderSample_{task}"
        output = PurePosixPath(task, "MultiCoil", modality, split, task_dir, *tail)
    return Job(
        input_path=full, relative_path=relative, year=year, split=split, modality=modality, base=base,
        pattern=pattern, acceleration=acceleration, task=task, kspace_key="kus",
        mask_path=Path(*above, f"Mask_{task}", *tail[:-1], f"{base}_mask_{pattern}{acceleration}.mat"),
        mask_key="mask", output_relative=output, patient=tail[-2] if len(tail) >= 2 else "",
        center=site[0] if site else "", vendor=site[1] if len(site) > 1 else "",
    )


def _parse_2023(full: Path, relative: PurePosixPath, base: str) -> Job | str:
    """2023: .../MultiCoil/{Cine|Mapping}/{Split}/AccFactorXX/P###/{cine_lax|cine_sax|T1map|T2map}.mat"""
    parts = full.parts
    for i in range(len(parts) - 2, -1, -1):
        acc = _ACC_FACTOR.match(parts[i])
        if acc:
            break
    else:
        return "2023 file name without an AccFactorXX folder above it"
    digits = acc["r"]
    modality = BASES_2023[base]       # the four names fix the modality; no folder needed
    split = _nearest(parts[:i], SPLITS) or DEFAULT_SPLIT
    tail = parts[i + 1:]
    return Job(
        input_path=full, relative_path=relative, year=2023, split=split, modality=modality, base=base,
        pattern="Uniform", acceleration=int(digits), task=TASKS_2023[modality], kspace_key=f"kspace_sub{digits}",
        mask_path=full.with_name(f"{base}_mask.mat"), mask_key=f"mask{digits}",
        output_relative=PurePosixPath("MultiCoil", modality, split, parts[i], *tail),
        patient=tail[-2] if len(tail) >= 2 else "",
    )


def _nearest(segments: Sequence[str], names: Sequence[str]) -> str:
    """The last (closest to the file) segment that is one of `names`, or ''."""
    return next((s for s in reversed(segments) if s in names), "")


def modality_of_base(base: str) -> str:
    """Modality folder name implied by a file base name ('' if unknown): cine_sax -> Cine, T1rho -> T1rho."""
    return next((modality for prefix, modality in _MODALITY_PREFIXES if base.startswith(prefix)), "")


# ---------------------------------------------------------------------------------------------------------
# Per-job reconstruction settings.

def acs_lines(job: Job) -> int:
    """Fully sampled central ky lines (or square side for ktRadial): 24 (2023), 16 (2024), 20 (2025)."""
    return ACS_LINES[job.year]


def is_radial(job: Job) -> bool:
    """ktRadial masks are 2-D per frame; their ACS is a central square."""
    return job.pattern == "ktRadial"


def is_cyclic(job: Job) -> bool:
    """Cardiac-cycle series wrap around in time; other series (weightings, perfusion, LGE...) do not."""
    return job.base.startswith(_CYCLIC_PREFIXES)


def volume_meta(job: Job) -> VolumeMeta:
    from model.reconstruction import VolumeMeta  # imported here so path parsing never pulls in torch

    return VolumeMeta(num_acs=acs_lines(job), radial=is_radial(job), cyclic=is_cyclic(job), name=job.name)


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


# ---------------------------------------------------------------------------------------------------------
# MATLAB rounding, crop.m, run4Ranking and the output array.

def matlab_round(x):
    """MATLAB round: halves away from zero (Python's round(42.5) is 42, MATLAB's 43); a scalar gives an int,
    an array a float array."""
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    # compare the fraction (not floor(x + 0.5)): 0.49999999999999994 + 0.5 rounds up to 1.0 in floating point
    rounded = np.sign(x) * (whole + (magnitude - whole >= 0.5))
    return int(rounded) if np.ndim(rounded) == 0 else rounded


def crop_indices(m: int, s: int) -> tuple[int, int]:
    """0-based [start, stop) that MATLAB crop.m keeps when cropping an axis of size m to s."""
    if not 0 < s <= m:
        raise ValueError(f"cannot crop an axis of size {m} to {s}")
    centre = m // 2
    return centre + math.ceil(-s / 2), centre + math.ceil(s / 2)


def matlab_shape(dims: Sequence[int]) -> tuple[int, ...]:
    """MATLAB's size(): trailing singleton dimensions dropped, interior ones kept, at least 2 dims."""
    shape = list(dims)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


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
    y = range(*crop_indices(ny, matlab_round(ny / 2)))
    x = range(*crop_indices(nx, matlab_round(nx / 3)))
    return _Selection(frames, slices, y, x)


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


# ---------------------------------------------------------------------------------------------------------
# Scoring conventions (used by challenge.scoring).

MEAN_OF_VALID = "mean"                          # plain mean over the valid files
SUM_OVER_TOTAL = "sum_over_total"               # sum over valid files / all expected files (= w x mean)
MEAN_TIMES_2_MINUS_W = "mean_times_2_minus_w"   # mean over valid files x (2 - w); w = valid / total


@dataclass(frozen=True)
class ScoredFile:
    """What grouping needs from a file of an output or ground-truth tree."""
    relative_path: PurePosixPath
    year: int
    task: str
    modality: str
    base: str
    pattern: str = ""           # '' / 0 for ground-truth files named {base}.mat
    acceleration: int = 0
    center: str = ""
    vendor: str = ""
    patient: str = ""


def parse_output_path(year: int, relative_path: PurePosixPath | str) -> ScoredFile:
    """Parse an output (or ground-truth) file path relative to its tree root, for grouping."""
    path = PurePosixPath(relative_path)
    parts, name = path.parts, path.name
    if not name.endswith(".mat"):
        raise PathRuleError(f"{path}: not a .mat file")
    patient = parts[-2] if len(parts) >= 2 else ""
    if year == 2023:
        base = name[: -len(".mat")]
        acc = next((m for m in map(_ACC_FACTOR.match, reversed(parts[:-1])) if m), None)
        if base not in BASES_2023 or acc is None:
            raise PathRuleError(f"{path}: expected .../AccFactorXX/P###/{{cine_lax,cine_sax,T1map,T2map}}.mat")
        modality = BASES_2023[base]
        return ScoredFile(path, year, TASKS_2023[modality], modality, base, "Uniform", int(acc["r"]),
                          patient=patient)
    if year not in YEARS:
        raise ValueError(f"unsupported challenge year {year}")
    kus = _KUS_NAME.match(name)
    base = kus["base"] if kus else name[: -len(".mat")]
    pattern, acceleration = (kus["pattern"], int(kus["r"])) if kus else ("", 0)
    task_index = next((i for i in range(len(parts) - 2, -1, -1) if _TASK_DIR.match(parts[i])), None)
    if task_index is not None:
        task = _TASK_DIR.match(parts[task_index])["task"]
        site = parts[task_index + 1:-2]
    elif year == 2024 and pattern:
        task, site = ("Task1" if pattern == "Uniform" else "Task2"), ()
    else:
        raise PathRuleError(f"{path}: no Task folder in the path")
    modality = _nearest(parts[:-1], MODALITIES) or modality_of_base(base)
    return ScoredFile(path, year, task, modality, base, pattern, acceleration,
                      center=site[0] if site else "", vendor=site[1] if len(site) > 1 else "", patient=patient)


def _normalise_max(image: np.ndarray) -> np.ndarray:
    return image / image.max()


def _normalise_zscore(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / (image.std() + 1e-8)


def _normalise_percentile(image: np.ndarray) -> np.ndarray:
    magnitude = np.abs(image)
    peak = np.percentile(magnitude, 99.5)
    # the organisers leave an image whose 99.5th percentile is 0 unnormalised
    return magnitude / peak if peak > 0 else magnitude


def _group_2023(scored: ScoredFile) -> str:
    return f"{scored.base}/AccFactor{scored.acceleration:02d}"


def _group_2024(scored: ScoredFile) -> str:
    # Task 1 is reported per acceleration, Task 2 per trajectory pooled over R.
    if scored.pattern == "Uniform":
        return f"{scored.modality}/Uniform{scored.acceleration}"
    return f"{scored.modality}/{scored.pattern or scored.task}"


def _group_2025(scored: ScoredFile) -> str:
    # R1 is reported per centre and vendor; the disease groups of the other tasks are not in the paths.
    if scored.task == "TaskR1":
        return f"{scored.center}/{scored.vendor}"
    return scored.task


@dataclass(frozen=True)
class ScoringRules:
    year: int
    normalise: Callable[[np.ndarray], np.ndarray]    # per 2-D image, GT and submission separately
    group_of: Callable[[ScoredFile], str]
    adjustment: str                                  # PSNR and SSIM aggregation over a group
    nmse_adjustment: str
    reference_swap_ndims: frozenset[int]             # GT ranks for which the scorer's argument swap bites

    def submission_is_reference(self, gt_ndim: int) -> bool:
        """True where the official scorer takes the submission as reference (data_range from the normalised
        submission, NMSE denominator = |submission|^2): calmetric(gt, recon) against parameters (pred, gt)
        on 4-D arrays in 2024/2025; 3-D arrays take the other branch, which swaps back."""
        return gt_ndim in self.reference_swap_ndims


def scoring_rules(year: int) -> ScoringRules:
    if year == 2023:
        # 2023 averages the valid files of each group; there is no success-rate adjustment.
        return ScoringRules(2023, _normalise_max, _group_2023, MEAN_OF_VALID, MEAN_OF_VALID, frozenset())
    if year == 2024:
        return ScoringRules(2024, _normalise_zscore, _group_2024, SUM_OVER_TOTAL, SUM_OVER_TOTAL,
                            frozenset({4}))
    if year == 2025:
        # test-2025/Evaluation.py has a 5-D branch that also takes the submission as reference
        return ScoringRules(2025, _normalise_percentile, _group_2025, SUM_OVER_TOTAL, MEAN_TIMES_2_MINUS_W,
                            frozenset({4, 5}))
    raise ValueError(f"unsupported challenge year {year}")
