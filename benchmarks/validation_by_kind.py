"""Single-pass SSIM / PSNR of several weights files on the simulated source's validation windows, per input kind.

    python -m benchmarks.validation_by_kind --weights A.pt [B.pt ...] [--windows 24] [--out docs/validation-by-kind.md]

The simulated-source presets validate on 16 windows pooled over every input kind; this splits validation by kind
(k-t, time-constant Uniform, static, mapping-like) so that a stage that shifts its draws towards one kind can be
judged on that kind, on the validation subjects (preset ``cpu``'s split, seed 0), never on the held-out cases of
benchmarks.native_eval. Every weights file sees the same windows (fixed seed); metrics as in training validation
(the window's centre frame against its noisy reference, the volume's maximum as data range).
"""
import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.validation_windows import report_lines, trained_on_every_subject, weights_note
from model.checkpoint import load_generator
from training.config import PRESETS, TrainConfig
from training.simulated import KINDS, SimulatedSampler
from training.trainer import simulated_samplers, window_scores

SEED = 23


def kind_windows(count: int, config: TrainConfig = PRESETS["cpu"]) -> dict[str, list]:
    """``count`` validation windows per input kind (final-curriculum accelerations), seeded per kind."""
    domains, _, val, _ = simulated_samplers(config)
    windows = {}
    for index, kind in enumerate(KINDS):
        sampler = SimulatedSampler(val.series, domains, config.acquisition, {kind: 1.0}, config.acs_choices,
                                   config.crop_width, config.adjacent_frames, reflect_augment=False)
        rng = np.random.default_rng(SEED + index)
        windows[kind] = [sampler.draw(rng, config.curriculum[-1][1]) for _ in range(count)]
    return windows


@torch.inference_mode()
def score(generator, samples) -> tuple[float, float]:
    """(mean SSIM, mean PSNR) of ``generator``'s single pass over ``samples``."""
    scores = [window_scores(generator(sample.masked_kspace, sample.mask, sample.num_acs, sample.radial,
                                      sample.shared_kspace).image, sample) for sample in samples]
    return float(np.mean([s for s, _ in scores])), float(np.mean([p for _, p in scores]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation_by_kind",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="+", required=True)
    parser.add_argument("--windows", type=int, default=24, help="windows per input kind")
    parser.add_argument("--out", type=Path, default=Path("docs/validation-by-kind.md"))
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.validation_by_kind", *(sys.argv[1:] if argv is None else argv)])
    loaded = [load_generator(path) for path in args.weights]
    rows = ["| kind | n | " + " | ".join(f"`{p}`" for p in args.weights) + " |",
            "|---|---|" + "---|" * len(args.weights)]
    for kind, samples in kind_windows(args.windows).items():
        cells = [score(generator, samples) for generator, _ in loaded]
        rows.append(f"| {kind} | {len(samples)} | " + " | ".join(f"{p:.2f} / {s:.3f}" for s, p in cells) + " |")
        print(rows[-1], flush=True)
    notes = [weights_note(path, "; its last stage trained on every subject, so these windows were seen in training"
                          if trained_on_every_subject(record) else "")
             for path, (_, record) in zip(args.weights, loaded)]
    lines = report_lines("Validation per input kind (benchmarks/validation_by_kind.py)", command, notes,
                         f"preset `cpu`'s validation subjects, simulated afresh (seed {SEED} + kind), single pass; "
                         "PSNR dB / SSIM, mean over the windows", rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
