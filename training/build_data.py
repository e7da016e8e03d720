"""Build CMRxRecon-format training and held-out evaluation trees by simulation.

`python -m training.build_data OUT [--seed 0] [--realisations 3]` writes
- OUT/train: the training tree (``MultiCoil/{Modality}/TrainingSet/FullSample/{Center}/{Vendor}/P###/*.mat``,
  key ``kspace_full``): real cine anatomy of the training subjects (../shared/data/real) and phantom cine and
  mapping series, each with simulated coils, smooth phase and noise, several realisations per series;
- OUT/eval/{seen,unseen_centre,unseen_contrast}: 2024 Task-2 test trees (input + gt_full) over
  ktUniform/ktGaussian/ktRadial x AF 8/16/24 for subjects never used in training, a centre/vendor never seen
  in training (Center005, Siemens 3T Vida) and a contrast never seen in training (tagging).

The split is fixed by name (SPLIT below) so that training and evaluation can never overlap.
"""
import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.masks import make_mask
from challenge.matio import write_kspace_v73
from tools.sample_data import Case, write_case
from simulation.acquisition import simulate_kspace
from simulation.anatomy import RealDataMissing, list_cine_series, load_cine_resized
from simulation.phantom import phantom_series

log = logging.getLogger("genre.build_data")

UNSEEN_CENTRE = "Center005"
HELDOUT_SUBJECTS = {"Center001_P005", "Center002_UIH_30T_umr880_P005", "Center003_P006"}
UNSEEN_CONTRAST = "tagging"
EVAL_PATTERNS = ("ktUniform", "ktGaussian", "ktRadial")
EVAL_FACTORS = (8, 16, 24)
NUM_ACS_2024 = 16
DOWNSAMPLE = (2.4, 2.9)          # real PNGs (~380-456 x 120-278) -> nx ~150-190, ny ~45-115


@dataclass(frozen=True)
class Series:
    """One magnitude series to simulate: (nt, ny, nx) float32 with where it came from."""
    images: np.ndarray
    modality: str
    base: str
    center: str
    vendor: str
    patient: str


def split_of(record) -> str:
    if record.center == UNSEEN_CENTRE:
        return "unseen_centre"
    return "seen" if record.folder in HELDOUT_SUBJECTS else "train"


def real_series(rng: np.random.Generator) -> dict[str, list[Series]]:
    """Real cine anatomy resized by a random factor, grouped by split."""
    groups: dict[str, list[Series]] = {"train": [], "seen": [], "unseen_centre": []}
    for record in list_cine_series():
        factor = rng.uniform(*DOWNSAMPLE)
        ny, nx = (max(32, int(round(s / factor))) for s in record.shape)
        images = load_cine_resized(record, ny, nx)
        base = "cine_sax" if record.view == "sax" else "cine_lax"
        groups[split_of(record)].append(Series(images, "Cine", base, record.center, record.vendor or "Unknown",
                                               record.patient))
    return groups


def phantom_group(contrast: str, count: int, rng: np.random.Generator, first_patient: int) -> list[Series]:
    modality, base, nt = {"cine": ("Cine", "cine_sax", 12), "T1map": ("Mapping", "T1map", 9),
                          "T2map": ("Mapping", "T2map", 3), "tagging": ("Tagging", "tagging", 12)}[contrast]
    series = []
    for i in range(count):
        ny, nx = int(rng.integers(56, 100)), int(rng.integers(140, 190))
        images = phantom_series(contrast, nt, ny, nx, rng)
        series.append(Series(images, modality, base, "Phantom", "Simulated", f"P{first_patient + i:03d}"))
    return series


def simulate(series: Series, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fully sampled k-space (nt, 1, nc, ny, nx) complex64 with random coils, SNR, phase and scale, and its
    RSS reference (nt, 1, ny, nx) float32."""
    return simulate_kspace(series.images[:, None], n_coils=int(rng.choice([8, 10, 12])), rng=rng,
                           snr=float(rng.uniform(20, 80)), scale=float(10 ** rng.uniform(-4, 2)))


def build_training_tree(out: Path, series: list[Series], realisations: int, rng: np.random.Generator) -> int:
    count = 0
    for s in series:
        for r in range(realisations):
            suffix = "" if r == 0 else f"_v{r + 1}"
            path = (out / "MultiCoil" / s.modality / "TrainingSet" / "FullSample" / s.center / s.vendor /
                    s.patient / f"{s.base}{suffix}.mat")
            if path.exists():
                path = path.with_name(f"{s.base}{suffix}_{count}.mat")
            write_kspace_v73(path, "kspace_full", simulate(s, rng)[0])
            count += 1
    return count


def build_eval_tree(out: Path, series: list[Series], rng: np.random.Generator) -> int:
    """2024 Task-2 test layout: {Modality}/TestSet/UnderSample_Task2/P###/{base}_kus_{Pattern}{R}.mat."""
    out.mkdir(parents=True, exist_ok=True)
    count, sources = 0, []
    for index, s in enumerate(series):
        kspace, reference = simulate(s, rng)
        nt, _, _, ny, nx = kspace.shape
        patient = f"P{index + 1:03d}"
        for pattern in EVAL_PATTERNS:
            for factor in EVAL_FACTORS:
                mask = make_mask(pattern, nt, ny, nx, factor, NUM_ACS_2024, rng)
                name = f"{s.base}_kus_{pattern}{factor}.mat"
                folder = f"{s.modality}/TestSet/{{}}_Task2/{patient}"
                case = Case(f"{folder.format('UnderSample')}/{name}", s.base, nt, 1, kspace.shape[2], ny, nx,
                            pattern, factor, mask_relative=f"{folder.format('Mask')}/{name.replace('_kus_', '_mask_')}")
                write_case(out, kspace, reference, mask, case, crops=(False,))
                count += 1
        sources.append({"patient": patient, "center": s.center, "vendor": s.vendor, "source": s.patient,
                        "base": s.base})
    (out / "sources.json").write_text(json.dumps(sources, indent=2))
    return count


def build_all(out: Path, seed: int = 0, realisations: int = 3, phantoms_per_contrast: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    try:
        real = real_series(rng)
    except RealDataMissing as error:
        log.warning("no real cine anatomy (%s): phantom data only, no seen/unseen-centre evaluation", error)
        real = {"train": [], "seen": [], "unseen_centre": []}
    train = (real["train"] + phantom_group("cine", phantoms_per_contrast, rng, 1)
             + phantom_group("T1map", phantoms_per_contrast, rng, 101)
             + phantom_group("T2map", phantoms_per_contrast, rng, 201))
    summary = {
        "train_files": build_training_tree(out / "train", train, realisations, rng),
        "seen_files": build_eval_tree(out / "eval" / "seen", real["seen"], rng),
        "unseen_centre_files": build_eval_tree(out / "eval" / "unseen_centre", real["unseen_centre"], rng),
        "unseen_contrast_files": build_eval_tree(out / "eval" / "unseen_contrast",
                                                 phantom_group(UNSEEN_CONTRAST, 3, rng, 301), rng),
        "seed": seed, "realisations": realisations,
        "train_subjects": sorted({f"{s.center}/{s.patient}" for s in train}),
        "heldout_subjects": sorted(HELDOUT_SUBJECTS), "unseen_centre": UNSEEN_CENTRE,
        "unseen_contrast": UNSEEN_CONTRAST,
    }
    (out / "build_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.build_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--realisations", type=int, default=3)
    parser.add_argument("--phantoms", type=int, default=4, help="phantom series per contrast")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty; remove it first", file=sys.stderr)
        return 2
    print(json.dumps(build_all(args.out, args.seed, args.realisations, args.phantoms), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
