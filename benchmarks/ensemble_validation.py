"""Reflection ensembles on validation windows: how the default of predict.py --ensemble was chosen.

    python -m benchmarks.ensemble_validation [--data data/genre/train] [--weights weights/genre_cmr.pt]
                                             [--out docs/ensemble-validation.md]

The windows come from the validation subjects of the training tree (the split the training runs use, seed 0),
never from the held-out evaluation trees, so the choice does not look at the numbers it is judged by. For each
group of windows (trajectories x accelerations, a fixed seed) the generator runs on every reflection of
model.reflection.ENSEMBLES[4]; ensemble N averages the reflected-back magnitudes of the reflections
in ENSEMBLES[N], as GenreReconstructor does. PSNR per window against the fully sampled centre frame (data range = the volume's
maximum, as in training validation), averaged per group.
"""
import argparse
import datetime
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.validation_windows import (GROUPS, SPLIT, draw_windows, seen_in_training_note,
                                           training_tree_exists, validation_split)
from model.checkpoint import file_sha256, load_generator
from model.metrics import psnr
from model.provenance import format_machine, machine_summary
from model.reflection import ENSEMBLES, reflect
from training.slice_index import SliceReader

SEED = 7


@torch.inference_mode()
def ensemble_psnrs(generator, samples, num_acs: int) -> dict[int, float]:
    """Mean PSNR over ``samples`` of each ensemble size in ENSEMBLES."""
    psnrs: dict[int, list[float]] = {size: [] for size in ENSEMBLES}
    for sample in samples:
        images = {}
        for dims in ENSEMBLES[4]:
            output = generator(reflect(sample.masked_kspace, dims), reflect(sample.mask, dims), num_acs,
                               sample.radial, reflect(sample.shared_kspace, dims))
            images[dims] = reflect(output.image, dims)
        for size, reflections in ENSEMBLES.items():
            mean = sum(images[dims] for dims in reflections) / len(reflections)
            psnrs[size].append(psnr(mean, sample.target, sample.data_range))
    return {size: float(np.mean(values)) for size, values in psnrs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ensemble_validation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/genre/train"))
    parser.add_argument("--weights", type=Path, default=Path("weights/genre_cmr.pt"))
    parser.add_argument("--out", type=Path, default=Path("docs/ensemble-validation.md"))
    args = parser.parse_args(argv)
    if not training_tree_exists(args.data):
        return 2
    command = shlex.join(["python", "-m", "benchmarks.ensemble_validation", *(sys.argv[1:] if argv is None else argv)])
    val_files, domains = validation_split(args.data)
    generator, record = load_generator(args.weights)
    cache = SliceReader()
    rows = []
    for label, patterns, factors, count in GROUPS:
        samples = draw_windows(val_files, domains, patterns, factors, count, SEED, cache)
        means = ensemble_psnrs(generator, samples, SPLIT.num_acs)
        rows.append(f"| {label} | {count} | " + " | ".join(f"{means[size]:.2f}" for size in ENSEMBLES)
                    + f" | {means[2] - means[1]:+.2f} | {means[4] - means[1]:+.2f} |")
        print(rows[-1], flush=True)
    lines = ["# Reflection ensembles on validation windows (benchmarks/ensemble_validation.py)", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='minutes')}",
             f"- Machine: {format_machine(machine_summary())}",
             f"- Command: `{command}`",
             f"- Weights: {args.weights}, sha256 `{file_sha256(args.weights)}`",
             f"- Windows: validation subjects of {args.data} ({len(val_files)} files), seed {SEED}; mean PSNR (dB)",
             *seen_in_training_note(record),
             "", "| windows | n | ensemble 1 | ensemble 2 | ensemble 4 | 2 − 1 | 4 − 1 |", "|---|---|---|---|---|---|---|",
             *rows, ""]
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
