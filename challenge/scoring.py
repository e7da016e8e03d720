"""The CMRxRecon organisers' image metrics and score aggregation for 2023, 2024 and 2025.

Per file: every 2-D image ``[:, :, *k]`` of the MATLAB-order ``img4ranking`` arrays is normalised (GT and
submission separately, the year's rule), compared with PSNR, SSIM and NMSE against the year's reference (the
2024/2025 scorers take the *submission* as reference for 4-D arrays, see ``rules.ScoringRules``) with
``data_range`` = max of the normalised reference image, and the per-image values are averaged per file.
Per group: mean over the valid files, success rate w = N_valid / N_total and the year's adjusted values.
Spec: ../shared/docs/cmrxrecon-format.md section 5. scikit-image is not needed at run time: ``ssim`` and
``psnr`` reproduce ``skimage.metrics`` (defaults, float32 kept float32 as skimage does).

    python -m challenge.scoring --gt GT_ROOT --recon RECON_ROOT --year 2024 [--json OUT.json] [--markdown OUT.md]

Exit status: 0 when every file is valid (w = 1), 1 when any is invalid or missing or the official scorer would
abort (the tables and JSON are still written), 2 when the ground truth or the labels cannot be read.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import scipy.io
from scipy.ndimage import uniform_filter

from challenge import rules
from model.matlab import matlab_round
from model.provenance import json_safe

SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


class GroundTruthError(ValueError):
    """A ground-truth file or tree cannot be scored (the scorer's own input is broken, not the submission)."""


# ---------------------------------------------------------------------------------------------------------
# Per-image metrics.

def _float_type(*dtypes: np.dtype) -> type:
    """skimage's _supported_float_type: float32 (and float16) stay single precision, all else is float64."""
    single = all(np.dtype(d) in (np.dtype(np.float16), np.dtype(np.float32)) for d in dtypes)
    return np.float32 if single else np.float64


def ssim(reference: np.ndarray, image: np.ndarray, data_range: float) -> float:
    """Mean SSIM of two 2-D images as skimage.metrics.structural_similarity(reference, image,
    data_range=data_range) with its defaults: 7x7 uniform window, K1 0.01, K2 0.03, sample covariance, the
    3-pixel border of the SSIM map excluded from the mean."""
    return float(ssim_map(reference, image, data_range).mean(dtype=np.float64))


def ssim_map(reference: np.ndarray, image: np.ndarray, data_range: float) -> np.ndarray:
    """The SSIM map whose mean is ``ssim``: (H - 6, W - 6), the pixels of reference[3:-3, 3:-3]."""
    if reference.shape != image.shape or reference.ndim != 2:
        raise ValueError(f"ssim needs two 2-D images of one shape, got {reference.shape} and {image.shape}")
    if min(reference.shape) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {reference.shape}")
    float_type = _float_type(reference.dtype)
    x = reference.astype(float_type, copy=False)
    y = image.astype(float_type, copy=False)
    num_pixels = SSIM_WINDOW ** 2
    cov_norm = num_pixels / (num_pixels - 1)
    ux = uniform_filter(x, size=SSIM_WINDOW)
    uy = uniform_filter(y, size=SSIM_WINDOW)
    uxx = uniform_filter(x * x, size=SSIM_WINDOW)
    uyy = uniform_filter(y * y, size=SSIM_WINDOW)
    uxy = uniform_filter(x * y, size=SSIM_WINDOW)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    # Same operation order as skimage so float32 results agree to the last bits.
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    a1, a2 = 2 * ux * uy + c1, 2 * vxy + c2
    b1, b2 = ux**2 + uy**2 + c1, vx + vy + c2
    with np.errstate(divide="ignore", invalid="ignore"):     # a constant image with data_range 0 -> NaN
        values = (a1 * a2) / (b1 * b2)
    pad = (SSIM_WINDOW - 1) // 2
    return values[pad:-pad, pad:-pad]


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float) -> float:
    """skimage.metrics.peak_signal_noise_ratio(reference, image, data_range=data_range) in dB; inf for
    identical images."""
    float_type = _float_type(reference.dtype, image.dtype)
    x = np.asarray(reference, dtype=float_type)
    y = np.asarray(image, dtype=float_type)
    mse = np.mean((x - y) ** 2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(10 * np.log10((float(data_range) ** 2) / mse))


def nmse(reference: np.ndarray, image: np.ndarray) -> float:
    """||reference - image||^2 / ||reference||^2."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.linalg.norm(reference - image) ** 2 / np.linalg.norm(reference) ** 2)


# ---------------------------------------------------------------------------------------------------------
# Per-file scores.

@dataclass(frozen=True)
class FileScore:
    """Per-file means over its 2-D images; NaN metrics and a reason when the file is invalid."""
    psnr: float = math.nan
    ssim: float = math.nan
    nmse: float = math.nan
    num_images: int = 0
    invalid_reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.invalid_reason is None


def _invalid(reason: str) -> FileScore:
    return FileScore(invalid_reason=reason)


def score_file(gt_array: np.ndarray, recon_array: np.ndarray, year: int, *, test_phase: bool = False) -> FileScore:
    """Score one submission array against its ground truth, both MATLAB order (nx, ny[, nz[, nt]]).

    Invalid (not raised) when the scorer would reject or fail on the submission: shape mismatch (exact tuple;
    2025 test phase squeezes both first, as Test_Score2025 does), complex or non-finite values, images smaller
    than the 7x7 SSIM window. The per-file value is the mean over images; the 2024 test scorer uses nanmean.
    """
    if year == 2025 and test_phase:
        gt_array, recon_array = np.squeeze(gt_array), np.squeeze(recon_array)
    if gt_array.shape != recon_array.shape:
        return _invalid(f"shape mismatch: ground truth {gt_array.shape}, reconstruction {recon_array.shape}"
                        + _crop_hint(gt_array.shape, recon_array.shape))
    if np.iscomplexobj(recon_array):
        return _invalid(f"reconstruction is complex ({recon_array.dtype}), not a magnitude image")
    if not np.issubdtype(recon_array.dtype, np.number):
        return _invalid(f"reconstruction is not numeric ({recon_array.dtype})")
    if not np.isfinite(recon_array).all():
        return _invalid("non-finite values (NaN/Inf) in the reconstruction")
    if not np.isfinite(gt_array).all():
        return _invalid("non-finite values (NaN/Inf) in the ground truth")
    if gt_array.ndim < 2 or min(gt_array.shape[:2]) < SSIM_WINDOW:
        return _invalid(f"image size {gt_array.shape[:2]} is below the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")

    values = []
    for reference, other, _ in compared_images(gt_array, recon_array, year):
        data_range = reference.max()
        values.append((psnr(reference, other, data_range), ssim(reference, other, data_range),
                       nmse(reference, other)))
    per_image = np.asarray(values, dtype=np.float64)
    means = _nanmean(per_image, axis=0) if (year == 2024 and test_phase) else per_image.mean(axis=0)
    return FileScore(psnr=float(means[0]), ssim=float(means[1]), nmse=float(means[2]), num_images=len(values))


def compared_images(gt_array: np.ndarray, recon_array: np.ndarray, year: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(reference, other, ground truth) per 2-D image [:, :, *k] of two arrays of one shape, each normalised by
    the year's rule; reference is the submission where the year's scorer takes it so (data_range = its max)."""
    scoring = rules.scoring_rules(year)
    swap = scoring.submission_is_reference(gt_array.ndim)
    for index in np.ndindex(gt_array.shape[2:]):
        gt_image = scoring.normalise(gt_array[(slice(None), slice(None), *index)])
        recon_image = scoring.normalise(recon_array[(slice(None), slice(None), *index)])
        yield (recon_image, gt_image, gt_image) if swap else (gt_image, recon_image, gt_image)


def _crop_hint(gt_shape: tuple[int, ...], recon_shape: tuple[int, ...]) -> str:
    """Why a full-size reconstruction fails against a cropped ground truth, when that is the case."""
    if len(gt_shape) < 2 or len(recon_shape) < 2:
        return ""
    cropped = (matlab_round(recon_shape[0] / 3), matlab_round(recon_shape[1] / 2))
    if tuple(gt_shape[:2]) != cropped:
        return ""
    return (" (the ground truth is the run4Ranking crop of a full-size reconstruction: predict with --crop, "
            "or score against the full-size ground truth, e.g. gt_full)")


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """np.nanmean without the 'Mean of empty slice' warning: an all-NaN column is NaN, as wanted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


# ---------------------------------------------------------------------------------------------------------
# Reading img4ranking files as the official loaders do.

class RankingFileError(ValueError):
    """An img4ranking file cannot be read; `reason` is the short form for reports."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def load_ranking_array(path: Path, *, transpose_hdf5: bool = False) -> np.ndarray:
    """``img4ranking`` of a .mat file: scipy.io.loadmat (MAT v5); v7.3 files through h5py, read as the
    official loaders do: axes untransposed (2023, 2024, 2025 validation) or reversed (2025 test)."""
    try:
        content = scipy.io.loadmat(path, variable_names=[rules.OUTPUT_KEY])
    except NotImplementedError:
        return _load_hdf5(path, transpose_hdf5)
    except Exception as error:  # noqa: BLE001 - any parse failure makes the file unreadable
        raise RankingFileError(path, f"unreadable: {error}") from error
    if rules.OUTPUT_KEY not in content:
        raise RankingFileError(path, f"missing key {rules.OUTPUT_KEY!r}")
    return content[rules.OUTPUT_KEY]


def _load_hdf5(path: Path, transpose: bool) -> np.ndarray:
    try:
        with h5py.File(path, "r") as handle:
            if rules.OUTPUT_KEY not in handle:
                raise RankingFileError(path, f"missing key {rules.OUTPUT_KEY!r}")
            array = handle[rules.OUTPUT_KEY][()]
    except RankingFileError:
        raise
    except Exception as error:  # noqa: BLE001
        raise RankingFileError(path, f"unreadable: {error}") from error
    if array.dtype.names and {"real", "imag"} <= set(array.dtype.names):
        array = array["real"] + 1j * array["imag"]
    return array.transpose() if transpose else array


# ---------------------------------------------------------------------------------------------------------
# Groups and trees.

@dataclass(frozen=True)
class GroupedFileScore:
    """One file of a scored tree: its path (relative to the tree), the groups it counts in, its score."""
    relative_path: str
    groups: tuple[str, ...]
    score: FileScore


@dataclass(frozen=True)
class GroupSummary:
    """Mean over the valid files, success rate and the organisers' adjusted values (NaN without valid files,
    where the 2024 test and 2025 scorers report nothing)."""
    name: str
    num_files: int
    num_valid: int
    psnr: float
    ssim: float
    nmse: float
    psnr_adj: float
    ssim_adj: float
    nmse_adj: float

    @property
    def success_rate(self) -> float:
        return self.num_valid / self.num_files if self.num_files else math.nan


def _adjusted(values: np.ndarray, num_total: int, rule: str) -> float:
    """One metric over the valid files of a group of `num_total` expected files, aggregated by `rule`."""
    if len(values) == 0 or np.isnan(values).all():
        return math.nan
    mean = float(np.nanmean(values))
    if rule == rules.MEAN_OF_VALID:
        return mean
    if rule == rules.SUM_OVER_TOTAL:
        return float(np.nansum(values)) / num_total        # pandas sum skips NaN
    if rule == rules.MEAN_TIMES_2_MINUS_W:
        return mean * (2 - len(values) / num_total)
    raise ValueError(f"unknown aggregation rule {rule!r}")


def summarise_group(name: str, scores: list[FileScore], scoring: rules.ScoringRules) -> GroupSummary:
    """Aggregate the files of one group: all of them count in N_total, the valid ones in the means."""
    valid = [s for s in scores if s.valid]
    table = np.array([[s.psnr, s.ssim, s.nmse] for s in valid], dtype=np.float64).reshape(-1, 3)
    means = _nanmean(table, axis=0)
    total = len(scores)
    return GroupSummary(
        name=name, num_files=total, num_valid=len(valid),
        psnr=float(means[0]), ssim=float(means[1]), nmse=float(means[2]),
        psnr_adj=_adjusted(table[:, 0], total, scoring.adjustment),
        ssim_adj=_adjusted(table[:, 1], total, scoring.adjustment),
        nmse_adj=_adjusted(table[:, 2], total, scoring.nmse_adjustment),
    )


@dataclass
class ScoreReport:
    year: int
    gt_root: str
    recon_root: str
    files: list[GroupedFileScore]
    groups: list[GroupSummary]
    overall: GroupSummary                           # all files pooled
    mean_over_groups: dict[str, float]              # the organisers' headline: nanmean of the group values
    extra_files: list[str] = field(default_factory=list)   # submitted files without ground truth
    errors: list[str] = field(default_factory=list)        # conditions that abort the official scorer

    def to_dict(self) -> dict:
        def group_dict(group: GroupSummary) -> dict:
            return {**asdict(group), "success_rate": group.success_rate}

        return {
            "year": self.year, "gt_root": self.gt_root, "recon_root": self.recon_root,
            "overall": group_dict(self.overall), "mean_over_groups": self.mean_over_groups,
            "groups": [group_dict(g) for g in self.groups],
            "files": [{"relative_path": f.relative_path, "groups": list(f.groups), **asdict(f.score),
                       "valid": f.score.valid} for f in self.files],
            "extra_files": self.extra_files, "errors": self.errors,
        }


def _is_test_phase(relative: PurePosixPath) -> bool:
    return "TestSet" in relative.parts


def reads_reversed(year: int, relative: PurePosixPath) -> bool:
    """Whether the year's scorer reads this file's v7.3 arrays with their axes reversed (2025 test phase)."""
    return year == 2025 and _is_test_phase(relative)


def mat_files(root: Path) -> list[PurePosixPath]:
    """Relative paths of the .mat files under root (symlinks followed, AppleDouble files skipped), sorted."""
    found = []
    for directory, _, names in os.walk(root, followlinks=True):
        for name in names:
            if name.startswith("._") or not name.endswith(".mat"):
                continue
            found.append(PurePosixPath(*Path(directory, name).relative_to(root).parts))
    return sorted(found)


def patient_key(scored: rules.ScoredFile) -> str:
    """Key of a file's patient in a labels table: 'Center/Vendor/P###' (2025) or 'P###'."""
    return "/".join(p for p in (scored.center, scored.vendor, scored.patient) if p)


def load_labels(path: Path) -> dict[str, list[str]]:
    """Group labels per patient (e.g. the 2025 disease table), from JSON {patient_key: [label, ...]} or CSV with
    columns Center, Manufacturer, AnonPatientID, Disease1..Disease4 (the organisers' sheet saved as CSV)."""
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(path.read_text())
            return {key: [value] if isinstance(value, str) else list(value) for key, value in raw.items()}
        with open(path, newline="") as handle:
            labels = {}
            for row in csv.DictReader(handle):
                key = "/".join(row[c].strip() for c in ("Center", "Manufacturer", "AnonPatientID") if row.get(c))
                diseases = [row[c].strip().replace(",", "").replace(" ", "_") for c in row
                            if c.startswith("Disease") and row[c] and row[c].strip()]
                labels[key] = diseases
            return labels
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"{path}: cannot read labels ({error})") from error


def score_trees(gt_root: Path, recon_root: Path, year: int,
                labels: dict[str, list[str]] | None = None) -> ScoreReport:
    """Score every ground-truth .mat under gt_root against the file at the same relative path under recon_root.

    Missing or invalid submissions count in N_total and not in N_valid. Groups come from the year's rules, or
    from `labels` (patient_key -> labels; a file counts in each of its patient's labels) where given.
    2025 validation: a submitted *_kus_*.mat without ground truth aborts the official scorer; it is reported
    in `errors`. Raises GroundTruthError if gt_root has no .mat files or a ground-truth file is unreadable.
    """
    gt_root, recon_root = Path(gt_root), Path(recon_root)
    scoring = rules.scoring_rules(year)
    gt_files = mat_files(gt_root)
    if not gt_files:
        raise GroundTruthError(f"{gt_root}: no ground-truth .mat files")

    results = []
    for relative in gt_files:
        try:
            scored = rules.parse_output_path(year, relative)
        except rules.PathRuleError as error:
            raise GroundTruthError(f"{gt_root / relative}: {error}") from error
        groups = tuple(labels.get(patient_key(scored), [])) if labels else ()
        groups = groups or (scoring.group_of(scored),)
        results.append(GroupedFileScore(str(relative), groups, _score_pair(gt_root, recon_root, relative, year)))

    gt_set = set(gt_files)
    extra = [str(p) for p in mat_files(recon_root) if p not in gt_set] if recon_root.is_dir() else []
    # Val_Score2025 walks the submitted *_kus_*.mat files and raises on one without ground truth.
    errors = [f"extra file submitted (no ground truth): {p}" for p in extra
              if year == 2025 and "_kus_" in PurePosixPath(p).name and "ValidationSet" in PurePosixPath(p).parts]

    names = sorted({g for r in results for g in r.groups})
    groups = [summarise_group(n, [r.score for r in results if n in r.groups], scoring) for n in names]
    overall = summarise_group("all", [r.score for r in results], scoring)
    mean_over_groups = {}
    for metric in ("psnr", "ssim", "nmse", "psnr_adj", "ssim_adj", "nmse_adj"):
        column = np.array([getattr(g, metric) for g in groups], dtype=np.float64)
        mean_over_groups[metric] = float(_nanmean(column))
    return ScoreReport(year, str(gt_root), str(recon_root), results, groups, overall, mean_over_groups,
                       extra, errors)


def _score_pair(gt_root: Path, recon_root: Path, relative: PurePosixPath, year: int) -> FileScore:
    test_phase = _is_test_phase(relative)
    transpose = reads_reversed(year, relative)
    try:
        gt_array = load_ranking_array(gt_root / relative, transpose_hdf5=transpose)
    except RankingFileError as error:
        raise GroundTruthError(str(error)) from error
    recon_path = recon_root / relative
    if not recon_path.is_file():
        return _invalid("missing reconstruction")
    try:
        recon_array = load_ranking_array(recon_path, transpose_hdf5=transpose)
    except RankingFileError as error:
        return _invalid(error.reason)
    return score_file(gt_array, recon_array, year, test_phase=test_phase)


# ---------------------------------------------------------------------------------------------------------
# Tables and CLI.

_COLUMNS = ("group", "files", "valid", "w", "PSNR", "SSIM", "NMSE", "PSNR adj", "SSIM adj", "NMSE adj")


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _row(group: GroupSummary) -> list[str]:
    return [group.name, str(group.num_files), str(group.num_valid), _number(group.success_rate, 3),
            _number(group.psnr), _number(group.ssim), _number(group.nmse),
            _number(group.psnr_adj), _number(group.ssim_adj), _number(group.nmse_adj)]


def _table_rows(report: ScoreReport) -> list[list[str]]:
    m = report.mean_over_groups
    mean_row = ["mean over groups", "", "", "", _number(m["psnr"]), _number(m["ssim"]), _number(m["nmse"]),
                _number(m["psnr_adj"]), _number(m["ssim_adj"]), _number(m["nmse_adj"])]
    return [_row(g) for g in report.groups] + [_row(report.overall), mean_row]


def format_table(report: ScoreReport) -> str:
    """Plain-text table: one row per group, all files pooled, and the mean over groups."""
    rows = [list(_COLUMNS)] + _table_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_markdown(report: ScoreReport) -> str:
    lines = [f"# CMRxRecon {report.year} scores", "",
             "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in _table_rows(report)]
    invalid = [f for f in report.files if not f.score.valid]
    if invalid:
        lines += ["", "## Invalid files", ""] + [f"- `{f.relative_path}`: {f.score.invalid_reason}" for f in invalid]
    if report.errors:
        lines += ["", "## Errors (the official scorer aborts)", ""] + [f"- {e}" for e in report.errors]
    return "\n".join(lines) + "\n"


def write_json(report: ScoreReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(report.to_dict()), indent=2, allow_nan=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m challenge.scoring", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth tree (img4ranking files)")
    parser.add_argument("--recon", type=Path, required=True, help="submission tree, same relative paths")
    parser.add_argument("--year", type=int, required=True, choices=rules.YEARS)
    parser.add_argument("--json", type=Path, help="write the full report as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    parser.add_argument("--labels", type=Path,
                        help="per-patient group labels (JSON {'Center/Vendor/P###': [...]} or the organisers' "
                             "disease sheet as CSV)")
    args = parser.parse_args(argv)
    try:
        labels = load_labels(args.labels) if args.labels else None
        report = score_trees(args.gt, args.recon, args.year, labels)
    except (GroundTruthError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(report))
    for result in report.files:
        if not result.score.valid:
            print(f"invalid: {result.relative_path}: {result.score.invalid_reason}")
    for path in report.extra_files:
        print(f"extra (no ground truth): {path}")
    if args.json:
        write_json(report, args.json)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(format_markdown(report))
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    problem = invalid_files_message(report)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if (report.errors or problem) else 0


def invalid_files_message(report: ScoreReport) -> str | None:
    """None when every ground-truth file has a valid reconstruction (w = 1); otherwise how many do not and
    the first reason, so a run that scored nothing cannot pass for one that scored."""
    invalid = [f for f in report.files if not f.score.valid]
    if not invalid:
        return None
    first = invalid[0]
    return (f"{len(invalid)} of {len(report.files)} files invalid or missing "
            f"(w = {report.overall.success_rate:.3f}); first: {first.relative_path}: {first.score.invalid_reason}")


if __name__ == "__main__":
    sys.exit(main())
