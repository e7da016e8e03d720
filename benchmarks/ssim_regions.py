"""The scorer's SSIM split into the object and the background around it, per file and per reconstruction tree.

A challenge ground truth is a fully sampled, noisy reconstruction, and the SSIM of a whole image weighs the air
around the heart as much as the heart. A reconstruction that removes the reference's background noise gains
little PSNR but loses SSIM there, which a whole-image score cannot tell from a worse object. This splits the
scorer's own SSIM map (challenge.scoring: the year's normalisation and reference) into

- object: pixels whose normalised ground truth is at least THRESHOLD x its image's maximum,
- background: the rest,

and reports, per file (mean over its images) and over the files, the whole SSIM (the scorer's), the object's,
the background's, and how much of the reference's background variation each tree keeps (std of the tree's
background / std of the ground truth's, 1 = as noisy as the reference, 0 = flat).

    python -m benchmarks.ssim_regions --gt GT_ROOT --year 2023 --recon NAME=ROOT [NAME=ROOT ...]
        [--threshold 0.1] [--out REPORT.md]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge import scoring

PAD = (scoring.SSIM_WINDOW - 1) // 2


@dataclass(frozen=True)
class RegionSSIM:
    whole: float
    object: float
    background: float
    background_fraction: float
    background_kept: float          # std of the reconstruction's background / std of the ground truth's


def image_regions(reference: np.ndarray, other: np.ndarray, truth: np.ndarray, threshold: float) -> RegionSSIM:
    """One image pair as the scorer compares it (reference, other; data_range = reference max), split by the
    ground truth ``truth`` (normalised, same shape) at ``threshold`` x its maximum. 2-D arrays of one shape."""
    values = scoring.ssim_map(reference, other, reference.max())
    inner = (slice(PAD, -PAD), slice(PAD, -PAD))
    is_object = truth[inner] >= threshold * truth.max()
    recon = other if truth is reference else reference    # compared_images hands the ground truth itself
    background_truth, background_recon = truth[inner][~is_object], recon[inner][~is_object]
    nan = float("nan")
    return RegionSSIM(
        whole=float(values.mean(dtype=np.float64)),
        object=float(values[is_object].mean(dtype=np.float64)) if is_object.any() else nan,
        background=float(values[~is_object].mean(dtype=np.float64)) if (~is_object).any() else nan,
        background_fraction=float((~is_object).mean()),
        background_kept=(float(background_recon.std() / background_truth.std())
                         if background_truth.size and background_truth.std() > 0 else nan),
    )


def file_regions(gt_array: np.ndarray, recon_array: np.ndarray, year: int, threshold: float) -> RegionSSIM:
    """The mean over a file's images of ``image_regions`` (arrays in MATLAB order, as challenge.scoring)."""
    if gt_array.shape != recon_array.shape:
        raise ValueError(f"shape mismatch: ground truth {gt_array.shape}, reconstruction {recon_array.shape}")
    return mean_regions([image_regions(reference, other, truth, threshold)
                         for reference, other, truth in scoring.compared_images(gt_array, recon_array, year)])


def mean_regions(regions: list[RegionSSIM]) -> RegionSSIM:
    """The field-wise mean of several RegionSSIM, NaN (an image without background, say) left out."""
    return RegionSSIM(*(float(np.nanmean([getattr(r, f) for r in regions])) for f in RegionSSIM.__dataclass_fields__))


def tree_regions(gt_root: Path, recon_root: Path, year: int, threshold: float) -> dict[str, RegionSSIM]:
    """``file_regions`` of every ground-truth .mat under gt_root against the same path under recon_root."""
    found = {}
    for relative in scoring.mat_files(gt_root):
        transpose = scoring.reads_reversed(year, relative)
        gt = scoring.load_ranking_array(gt_root / relative, transpose_hdf5=transpose)
        recon_path = recon_root / relative
        if not recon_path.is_file():
            raise FileNotFoundError(f"{recon_path}: no reconstruction for ground truth {gt_root / relative}")
        found[str(relative)] = file_regions(gt, scoring.load_ranking_array(recon_path, transpose_hdf5=transpose),
                                            year, threshold)
    if not found:
        raise FileNotFoundError(f"{gt_root}: no ground-truth .mat files")
    return found


def report(trees: dict[str, dict[str, RegionSSIM]], threshold: float) -> str:
    names = list(trees)
    files = list(next(iter(trees.values())))
    lines = [f"SSIM by region (object: ground truth >= {threshold:g} x its image maximum); per cell whole / object / "
             "background SSIM, background kept", "",
             "| file | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def cell(r: RegionSSIM) -> str:
        return f"{r.whole:.4f} / {r.object:.4f} / {r.background:.4f}, {r.background_kept:.2f}"

    for file in files:
        lines.append(f"| {file} | " + " | ".join(cell(trees[n][file]) for n in names) + " |")
    means = {n: mean_regions([trees[n][f] for f in files]) for n in names}
    lines.append("| mean over files | " + " | ".join(cell(means[n]) for n in names) + " |")
    fraction = float(np.mean([trees[names[0]][f].background_fraction for f in files]))
    lines += ["", f"Background: {fraction:.0%} of the scored pixels on average."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth tree (as challenge.scoring --gt)")
    parser.add_argument("--year", type=int, required=True, choices=(2023, 2024, 2025))
    parser.add_argument("--recon", nargs="+", required=True, metavar="NAME=ROOT", help="reconstruction trees")
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    trees = {}
    try:
        for pair in args.recon:
            name, sep, root = pair.partition("=")
            if not sep or not name or not root:
                raise ValueError(f"--recon: expected NAME=ROOT, got {pair!r}")
            trees[name] = tree_regions(args.gt, Path(root), args.year, args.threshold)
    except (ValueError, FileNotFoundError, scoring.RankingFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = report(trees, args.threshold)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
