"""Small CMRxRecon-format input trees (2023, 2024 Task 1/2, 2025) with their ground truth.

`python -m tools.sample_data OUT [--years 2023 2024 2025] [--seed 0]` writes, per year,
OUT/<year>/input (the test-phase input tree as the container sees it), and OUT/<year>/gt_full and
OUT/<year>/gt_crop (the ground truth at the output path the year's scorer reads, full size and run4Ranking
crop). Masks come from the official algorithms with the year's ACS size; k-space is simulated from real cine
anatomy (../shared/data/real) where present and from the phantom otherwise and for the other contrasts. The
cases include odd matrix sizes, 4-D files, single-slice files and files with nt < 5.
"""
import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.masks import make_mask
from challenge.matio import write_kspace_v73, write_mask_v73, write_output
from challenge.rules import ACS_LINES, parse_job, to_output_array
from simulation.acquisition import simulate_kspace
from simulation.anatomy import RealDataMissing, list_cine_series, load_cine_resized
from simulation.phantom import phantom_series

PHANTOM_CONTRAST = {"cine": "cine", "T1map": "T1map", "T2map": "T2map", "tagging": "tagging",
                    "blackblood": "blackblood", "aorta": "cine", "lge": "lge"}


@dataclass(frozen=True)
class Case:
    """One file to write: where (relative input path), what (contrast, sizes) and how it is undersampled."""
    relative: str               # input path relative to the year's input root
    contrast: str               # key of PHANTOM_CONTRAST; 'cine' uses real anatomy when available
    nt: int                     # 0 = 4-D file (no time axis)
    nz: int
    nc: int
    ny: int
    nx: int
    pattern: str
    factor: int
    kspace_key: str = "kus"
    mask_relative: str = ""     # mask file path relative to the input root
    mask_key: str = "mask"
    mask_2d: bool = False       # 2-D (ny, nx) mask file (2023, 2024 Task 1) instead of k-t (nt, ny, nx)


def magnitude_series(case: Case, rng: np.random.Generator, anatomy: list) -> np.ndarray:
    """(nt, nz, ny, nx) in [0, 1]: real cine anatomy for cine cases where available, else the phantom."""
    nt = max(case.nt, 1)
    slices = []
    for _ in range(case.nz):
        if case.contrast == "cine" and anatomy:
            series = load_cine_resized(anatomy[int(rng.integers(len(anatomy)))], case.ny, case.nx)
            frames = np.arange(nt) * series.shape[0] // nt
            slices.append(series[frames])
        else:
            slices.append(phantom_series(PHANTOM_CONTRAST[case.contrast], nt, case.ny, case.nx, rng))
    return np.stack(slices, axis=1)


def write_case(year_root: Path, kspace_full: np.ndarray, reference: np.ndarray, mask: np.ndarray,
               case: Case, crops: tuple[bool, ...] = (False, True)) -> None:
    """Undersample, write k-space and mask as v7.3, and the ground truth at the scorer's output path.

    kspace_full (nt, nz, nc, ny, nx); reference (nt, nz, ny, nx); mask (nt, ny, nx) bool.
    """
    has_time = case.nt > 0
    kus = kspace_full * mask[:, None, None]
    input_path = year_root / "input" / case.relative
    write_kspace_v73(input_path, case.kspace_key, kus if has_time else kus[0], compress=False)
    write_mask_v73(year_root / "input" / case.mask_relative, case.mask_key,
                   mask[0] if case.mask_2d or not has_time else mask)
    job = parse_job(year_root / "input", input_path)
    if job is None:
        raise ValueError(f"{input_path}: the year rules do not recognise this sample file")
    for crop in crops:
        folder = "gt_crop" if crop else "gt_full"
        write_output(year_root / folder / job.output_relative,
                     to_output_array(job, reference, has_time_axis=has_time, crop=crop))


# The trees are small on purpose: `make smoke` runs the network on every frame of them, on 2 cores shared with
# other jobs. Each year keeps its layout and every file kind and pattern its tree holds, with few frames (cine 6,
# so that a 5-frame window still has distinct neighbours; mapping its real weighting count), one or two slices
# and matrices about a quarter of the real ones in each direction (64 x 128 for a 246 x 512 cine).


def cases_2023() -> list[Case]:
    rows = [  # AccFactor, modality, base, contrast, nt, nz, ny, nx: every AF folder, every file kind once
        (4, "Cine", "cine_sax", "cine", 6, 1, 64, 128),
        (4, "Mapping", "T2map", "T2map", 3, 2, 56, 120),                          # nt < 5, two slices
        (8, "Cine", "cine_lax", "cine", 6, 1, 63, 129),                           # odd sizes
        (10, "Mapping", "T1map", "T1map", 9, 1, 56, 120),
    ]
    cases = []
    for factor, modality, base, contrast, nt, nz, ny, nx in rows:
        directory = f"MultiCoil/{modality}/TestSet/AccFactor{factor:02d}/P001"
        cases.append(Case(f"{directory}/{base}.mat", contrast, nt, nz, 6, ny, nx, "Uniform", factor,
                          kspace_key=f"kspace_sub{factor:02d}", mask_relative=f"{directory}/{base}_mask.mat",
                          mask_key=f"mask{factor:02d}", mask_2d=True))
    return cases


def cases_2024() -> list[Case]:
    rows = [  # modality, base, contrast, task, pattern, R, nt, nz, nc, ny, nx
        ("Cine", "cine_sax", "cine", 1, "Uniform", 4, 6, 2, 8, 64, 128),             # two slices
        ("Mapping", "T2map", "T2map", 1, "Uniform", 10, 3, 1, 6, 56, 120),          # nt < 5
        ("BlackBlood", "blackblood", "blackblood", 1, "Uniform", 8, 0, 2, 6, 60, 112),  # 4-D
        ("Aorta", "aorta_sag", "aorta", 1, "Uniform", 4, 6, 1, 4, 56, 112),
        ("Cine", "cine_lax", "cine", 2, "ktUniform", 8, 6, 1, 6, 65, 129),          # odd sizes, single slice
        ("Mapping", "T1map", "T1map", 2, "ktGaussian", 4, 9, 1, 6, 56, 120),
        ("Tagging", "tagging", "tagging", 2, "ktRadial", 12, 6, 1, 6, 63, 121),
    ]
    cases = []
    for modality, base, contrast, task, pattern, factor, nt, nz, nc, ny, nx in rows:
        name = f"{base}_kus_{pattern}{factor}.mat"
        cases.append(Case(f"{modality}/TestSet/UnderSample_Task{task}/P001/{name}", contrast, nt, nz, nc, ny, nx,
                          pattern, factor, mask_relative=f"{modality}/TestSet/Mask_Task{task}/P001/"
                          + name.replace("_kus_", "_mask_"), mask_2d=task == 1))
    return cases


def cases_2025() -> list[Case]:
    rows = [  # modality, base, contrast, pattern, R, nt, nz, nc, ny, nx
        ("Cine", "cine_sax", "cine", "ktRadial", 8, 6, 1, 10, 64, 129),
        ("Cine", "cine_lax_4ch", "cine", "Uniform", 16, 6, 1, 10, 65, 128),
        ("Mapping", "T1map", "T1map", "ktGaussian", 24, 9, 1, 10, 56, 120),
        ("Mapping", "T2map", "T2map", "Uniform", 8, 3, 1, 10, 56, 120),
        ("BlackBlood", "blackblood", "blackblood", "ktGaussian", 16, 0, 2, 10, 60, 112),   # 4-D, two slices
        ("LGE", "lge_sax", "lge", "ktRadial", 16, 2, 1, 10, 60, 120),
    ]
    cases = []
    for modality, base, contrast, pattern, factor, nt, nz, nc, ny, nx in rows:
        directory = f"TaskR1/MultiCoil/{modality}/TestSet/{{}}_TaskR1/Center005/Siemens_30T_Vida/P001"
        name = f"{base}_kus_{pattern}{factor}.mat"
        cases.append(Case(f"{directory.format('UnderSample')}/{name}", contrast, nt, nz, nc, ny, nx, pattern,
                          factor, mask_relative=f"{directory.format('Mask')}/{name.replace('_kus_', '_mask_')}"))
    return cases


CASES = {2023: cases_2023, 2024: cases_2024, 2025: cases_2025}


def build_sample_trees(out: Path, years=(2023, 2024, 2025), seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    try:
        anatomy = list_cine_series()
    except RealDataMissing as error:
        print(f"note: {error}; cine cases use the phantom", file=sys.stderr)
        anatomy = []
    manifest = {"seed": seed, "real_anatomy": bool(anatomy), "files": []}
    for year in years:
        year_root = Path(out) / str(year)
        for case in CASES[year]():
            magnitude = magnitude_series(case, rng, anatomy)
            kspace, reference = simulate_kspace(magnitude, case.nc, rng, snr=float(rng.uniform(20, 60)),
                                                scale=float(10 ** rng.uniform(-3, 1)))
            mask = make_mask(case.pattern, max(case.nt, 1), case.ny, case.nx, case.factor, ACS_LINES[year], rng)
            write_case(year_root, kspace, reference, mask, case)
            manifest["files"].append({"year": year, "input": case.relative, "shape_h5": list(kspace.shape),
                                      "has_time_axis": case.nt > 0, "pattern": case.pattern, "R": case.factor})
        if year == 2023:         # the inversion times beside T1map.mat (a file the walk must skip)
            (year_root / "input/MultiCoil/Mapping/TestSet/AccFactor10/P001/T1map.csv").write_text("TI\n100\n")
        if year == 2025:
            info = year_root / "input/TaskR1/MultiCoil/Cine/TestSet/UnderSample_TaskR1/Center005/Siemens_30T_Vida/P001"
            (info / "cine_sax_info.csv").write_text("key,value\n")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sample_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--years", type=int, nargs="+", default=[2023, 2024, 2025], choices=sorted(CASES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = build_sample_trees(args.out, tuple(args.years), args.seed)
    print(f"wrote {len(manifest['files'])} k-space files under {args.out} "
          f"({'real cine anatomy' if manifest['real_anatomy'] else 'phantom only'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
