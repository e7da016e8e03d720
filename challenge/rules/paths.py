"""Where the files are, per challenge year: which input files to reconstruct (their keys and masks), the output
path each year's scorer reads, and the parsing of output and ground-truth trees for grouping.

The output-path rules are output_path_2023, output_path_2024 and output_path_2025. Spec:
../shared/docs/cmrxrecon-format.md (sections 0-3). Paths are parsed from the file's side (nearest matching folder
wins) over the whole absolute path, so the input root may sit at any depth: a modality folder, ``MultiCoil``, a
task folder, a patient folder or above.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

YEARS = (2023, 2024, 2025)
SPLITS = ("TrainingSet", "ValidationSet", "TestSet")
DEFAULT_SPLIT = "TestSet"
PATTERNS = ("Uniform", "ktUniform", "ktGaussian", "ktRadial")
MODALITIES = ("Cine", "Aorta", "Mapping", "Tagging", "Flow2d", "BlackBlood", "LGE", "Perfusion", "T1rho",
              "T1w", "T2w")

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

_KUS_NAME = re.compile(r"^(?P<base>.+)_kus_(?P<pattern>ktUniform|ktGaussian|ktRadial|Uniform)(?P<r>\d+)\.mat$")
_UNDERSAMPLE_2024 = re.compile(r"^UnderSample_(?P<task>Task[12])$")
_UNDERSAMPLE_2025 = re.compile(r"^UnderSample_(?P<task>Task[RS]\d+)$")
_ACC_FACTOR = re.compile(r"^AccFactor(?P<r>\d+)$")
# Output/GT trees: Task1, UnderSample_TaskR1, FullSample_TaskR1, ...
_TASK_DIR = re.compile(r"^(?:[A-Za-z]+_)?(?P<task>Task(?:[12]|[RS]\d+))$")


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
        return _parse_2024_2025(full, relative, kus)
    base = name[: -len(".mat")]
    if base in BASES_2023:
        return _parse_2023(full, relative, base)
    return "not an undersampled k-space file name"


# ---------------------------------------------------------------------------------------------------------
# Output paths: where each year's scorer reads the reconstruction of an input.

def output_path_2023(modality: str, split: str, acc_folder: str, tail: Sequence[str]) -> PurePosixPath:
    """2023 mirrors the input: MultiCoil/{Modality}/{Split}/AccFactorXX/P###/{base}.mat (``tail``: the parts
    below the AccFactorXX folder)."""
    return PurePosixPath("MultiCoil", modality, split, acc_folder, *tail)


def output_path_2024(modality: str, split: str, task: str, tail: Sequence[str]) -> PurePosixPath:
    """2024: {Modality}/{Split}/{Task}/P###/{base}_kus_{Pattern}{R}.mat, the UnderSample_ prefix dropped
    (``tail``: the parts below the UnderSample_{Task} folder)."""
    return PurePosixPath(modality, split, task, *tail)


def output_path_2025(modality: str, split: str, task: str, tail: Sequence[str]) -> PurePosixPath:
    """2025: {Task}/MultiCoil/{Modality}/{Split}/{Task}/{Center}/{Vendor}/P###/{name}: the test scorer looks in
    {Task}; validation keeps UnderSample_{Task} (``tail``: the parts below the UnderSample_{Task} folder)."""
    task_dir = task if split == "TestSet" else f"UnderSample_{task}"
    return PurePosixPath(task, "MultiCoil", modality, split, task_dir, *tail)


# ---------------------------------------------------------------------------------------------------------
# Input paths per year.

def _parse_2024_2025(full: Path, relative: PurePosixPath, kus: re.Match) -> Job | str:
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
    output = (output_path_2024 if year == 2024 else output_path_2025)(modality, split, task, tail)
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
        output_relative=output_path_2023(modality, split, parts[i], tail),
        patient=tail[-2] if len(tail) >= 2 else "",
    )


def _nearest(segments: Sequence[str], names: Sequence[str]) -> str:
    """The last (closest to the file) segment that is one of `names`, or ''."""
    return next((s for s in reversed(segments) if s in names), "")


def modality_of_base(base: str) -> str:
    """Modality folder name implied by a file base name ('' if unknown): cine_sax -> Cine, T1rho -> T1rho."""
    return next((modality for prefix, modality in _MODALITY_PREFIXES if base.startswith(prefix)), "")


# ---------------------------------------------------------------------------------------------------------
# Output and ground-truth trees, parsed for grouping (challenge.scoring).

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
