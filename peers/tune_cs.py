"""Choose sigpy-cs's L1 weight on training windows, never on evaluation data.

    python -m peers.tune_cs [--windows 8] [--lambdas 0.001 0.002 0.005 0.01 0.02] [--preset cpu] [--seed 1]
                            [--out docs/peers.md]

The windows are GENRE's training windows (the preset's training sampler: training subjects and phantoms only),
drawn with their own seed. Per window: ESPIRiT maps from the window's frames (peers.sigpy_cs.espirit_maps), the
centre frame reconstructed with every L1 weight, scored with the 2024 metric (challenge.scoring.score_file:
z-score per image, PSNR and SSIM), as benchmarks.native_eval scores. The weight with the highest mean PSNR is
the one to set as peers.sigpy_cs.LAMBDA; the table goes between this script's markers in ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from challenge.scoring import score_file
from peers.sigpy_cs import MAX_ITER, cs_frame, espirit_maps, zero_filled

BEGIN, END = "<!-- tune_cs:begin -->", "<!-- tune_cs:end -->"


def score(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """2024 metric on one (ny, nx) image (MATLAB order is (nx, ny)) -> (PSNR, SSIM)."""
    result = score_file(reference.T.astype(np.float32), image.T.astype(np.float32), 2024)
    return result.psnr, result.ssim


def tune(samples, lambdas: list[float], max_iter: int = MAX_ITER) -> dict[str, list[tuple[float, float]]]:
    """{'zero-filled' or 'lambda L': [(PSNR, SSIM) per window]} over training.dataset.Sample windows."""
    scores: dict[str, list[tuple[float, float]]] = {"zero-filled": []}
    for index, sample in enumerate(samples):
        kspace = sample.masked_kspace[0].numpy()                   # (F, C, ny, nx)
        mask = sample.mask[0, :, 0].numpy().astype(bool)           # (F, ny, nx)
        reference, centre = sample.target[0].numpy(), kspace.shape[0] // 2
        maps = espirit_maps(kspace, mask, sample.num_acs or 16, sample.radial)
        scores["zero-filled"].append(score(reference, zero_filled(kspace[centre] * mask[centre])))
        for lamda in lambdas:
            image = cs_frame(kspace[centre], mask[centre], maps, lamda, max_iter)
            scores.setdefault(f"lambda {lamda:g}", []).append(score(reference, image))
        print(f"{index + 1}/{len(samples)} {sample.pattern} {sample.acceleration}: "
              + ", ".join(f"{k} {v[-1][0]:.2f}" for k, v in scores.items()), flush=True)
    return scores


def format_section(scores: dict, samples, command: str, seconds: float) -> str:
    best = max((k for k in scores if k.startswith("lambda")), key=lambda k: np.mean([s[0] for s in scores[k]]))
    kinds = ", ".join(f"{s.pattern} {s.acceleration}" for s in samples)
    lines = [BEGIN, "### sigpy-cs: the L1 weight (peers/tune_cs.py)", "",
             f"`{command}` on {datetime.date.today().isoformat()}, {seconds / 60:.1f} min. {len(samples)} training "
             f"windows ({kinds}); centre frame, 2024 metric; mean over the windows.", "",
             "| method | PSNR (dB) | SSIM |", "|---|---|---|"]
    for key, values in scores.items():
        mark = " (chosen)" if key == best else ""
        lines.append(f"| {key}{mark} | {np.mean([v[0] for v in values]):.2f} | {np.mean([v[1] for v in values]):.4f} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench_predict import write_section
    from training.config import PRESETS
    from training.trainer import window_samplers

    parser = argparse.ArgumentParser(prog="python -m peers.tune_cs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.001, 0.002, 0.005, 0.01, 0.02])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--seed", type=int, default=1, help="the windows' seed (training runs draw with others)")
    parser.add_argument("--out", type=Path, help="Markdown file whose tune_cs section is replaced")
    args = parser.parse_args(argv)
    config = PRESETS[args.preset]
    if config.source != "simulated":
        print(f"preset {args.preset} reads training trees; choose a simulated preset (cpu)", file=sys.stderr)
        return 2
    started = time.monotonic()
    _, sampler, _, _ = window_samplers(config, None, Path("."))
    rng = np.random.default_rng(args.seed)
    samples = [sampler.draw(rng, config.curriculum[-1][1]) for _ in range(args.windows)]
    scores = tune(samples, args.lambdas)
    command = shlex.join(["python", "-m", "peers.tune_cs", *(sys.argv[1:] if argv is None else argv)])
    section = format_section(scores, samples, command, time.monotonic() - started)
    print(section)
    if args.out:
        write_section(args.out, section, BEGIN, END, title="# Peers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
