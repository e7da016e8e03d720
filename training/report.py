"""Summarise a training run: per-epoch mean of every loss term and CoV weight, and the validation metrics.

`python -m training.report RUN_DIR [--require-improvement]` prints the table; with the flag it exits 1 unless
the last validation SSIM is above the first (used by `make train-smoke`).
"""
import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def epoch_curves(run_dir: Path) -> list[dict]:
    """Per-epoch means of the numeric columns of train_log.csv (the loss curves stored with the weights)."""
    sums: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(Path(run_dir) / "train_log.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = int(row["epoch"])
            for key, value in row.items():
                if key.startswith(("loss_", "w_")) or key in ("total", "d_loss"):
                    number = float(value) if value not in ("", None) else float("nan")
                    sums[epoch][key].append(number)
    return [{"epoch": epoch + 1, **{k: round(float(np.nanmean(v)), 6) if np.isfinite(v).any() else None
                                    for k, v in columns.items()}}
            for epoch, columns in sorted(sums.items())]


def validation_history(run_dir: Path) -> list[dict]:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def format_table(curves: list[dict], history: list[dict]) -> str:
    by_epoch = {h["epoch"]: h for h in history}
    lines = [f"{'epoch':>5} {'total':>8} {'ssim':>8} {'image':>8} {'ear':>8} {'sda':>8} {'adv':>8} "
             f"{'val SSIM':>9} {'val PSNR':>9}"]
    if 0 in by_epoch:
        lines.append(f"{0:>5} {'':>8} {'':>8} {'':>8} {'':>8} {'':>8} {'':>8} "
                     f"{by_epoch[0]['val_ssim']:>9.4f} {by_epoch[0]['val_psnr']:>9.2f}")
    for row in curves:
        val = by_epoch.get(row["epoch"], {})
        cells = [row.get(k) for k in ("total", "loss_ssim", "loss_image", "loss_ear", "loss_sda", "loss_adv")]
        metrics = (f" {val['val_ssim']:>9.4f} {val['val_psnr']:>9.2f}" if val
                   else f" {'(running)':>9} {'':>9}")          # the epoch in progress has no validation yet
        lines.append(f"{row['epoch']:>5} " + " ".join(f"{c:>8.4f}" if c is not None else f"{'-':>8}" for c in cells)
                     + metrics)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.report", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--require-improvement", action="store_true")
    args = parser.parse_args(argv)
    history = validation_history(args.run_dir)
    print(format_table(epoch_curves(args.run_dir), history))
    first, last = history[0]["val_ssim"], history[-1]["val_ssim"]
    print(f"validation SSIM {first:.4f} -> {last:.4f}, PSNR {history[0]['val_psnr']:.2f} -> "
          f"{history[-1]['val_psnr']:.2f} dB over {history[-1]['step']} steps")
    if args.require_improvement and not last > first:
        print("validation SSIM did not improve", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
