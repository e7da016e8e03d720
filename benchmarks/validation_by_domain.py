"""Single-pass PSNR of several weights files on the validation subjects' windows, per domain and window group.

    python -m benchmarks.validation_by_domain --weights A.pt [B.pt ...] [--data data/genre/train]
                                              [--windows 12] [--out docs/validation-by-domain.md]

Training validation pools every domain, simulated phantoms included; this splits it so that a training change
can be judged on the scanners' cine, on subjects no run with a validation split has trained on (the split
every training preset uses, seed 0), never on the held-out evaluation trees. Every weights file sees the same
windows (fixed seed); PSNR against the fully sampled centre frame with the volume's maximum as data range, as
in training validation.
"""
import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.validation_windows import (GROUPS, SPLIT, draw_windows, report_lines, seen_in_training_note,
                                           training_tree_exists, validation_split, weights_note)
from model.checkpoint import load_generator
from model.metrics import psnr
from training.slice_index import SliceReader

SEED = 11


@torch.inference_mode()
def mean_psnr(generator, samples, num_acs: int) -> float:
    values = []
    for sample in samples:
        output = generator(sample.masked_kspace, sample.mask, num_acs, sample.radial, sample.shared_kspace)
        values.append(psnr(output.image, sample.target, sample.data_range))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation_by_domain",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("data/genre/train"))
    parser.add_argument("--windows", type=int, default=12, help="windows per (domain, group)")
    parser.add_argument("--out", type=Path, default=Path("docs/validation-by-domain.md"))
    args = parser.parse_args(argv)
    if not training_tree_exists(args.data):
        return 2
    command = shlex.join(["python", "-m", "benchmarks.validation_by_domain",
                          *(sys.argv[1:] if argv is None else argv)])
    val_files, domains = validation_split(args.data)
    loaded = [load_generator(path) for path in args.weights]
    cache = SliceReader()
    header = "| domain | windows | n | " + " | ".join(f"`{p}`" for p in args.weights) + " |"
    rows = [header, "|---|---|---|" + "---|" * len(args.weights)]
    for domain in sorted({f.domain_name for f in val_files}):
        domain_files = [f for f in val_files if f.domain_name == domain]
        for label, patterns, factors, _ in GROUPS:
            samples = draw_windows(domain_files, domains, patterns, factors, args.windows, SEED, cache)
            means = [mean_psnr(generator, samples, SPLIT.num_acs) for generator, _ in loaded]
            rows.append(f"| {domain} | {label} | {args.windows} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
            print(rows[-1], flush=True)
    notes = [weights_note(path, "".join(f"; {line[2:]}" for line in seen_in_training_note(record)))
             for path, (_, record) in zip(args.weights, loaded)]
    lines = report_lines("Validation PSNR per domain (benchmarks/validation_by_domain.py)", command, notes,
                         f"validation subjects of {args.data} ({len(val_files)} files), seed {SEED}; single pass, "
                         "mean PSNR (dB)", rows)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
