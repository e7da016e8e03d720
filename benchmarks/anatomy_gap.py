"""How much of a generator's margin over zero-filled comes from anatomy it trained on: the same simulated windows
(kinds, seeds, acquisition) drawn from three pools of real cine subjects, and each weights file's margin on each.

    python -m benchmarks.anatomy_gap --weights A.pt [B.pt ...] [--windows 24] [--out docs/anatomy-gap.md]

Pools: `validation`, preset `cpu`'s validation subjects (the windows of benchmarks.validation_by_kind, which every
stage since stage 5 trained on); `held-out`, the held-out subjects of the same three centres; `unseen centre`, the
subjects of the centre no stage trained on. The last two are the anatomy of benchmarks.native_eval, so this is a
measurement, never a tool to choose weights with. A pool's own difficulty cancels in a weights file's change between
two stages on the same windows; it does not cancel in the difference between pools, which is why a generator that
never saw the validation subjects belongs in the comparison (stage 4: the last stage that kept the split).
"""
import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from benchmarks.validation_by_kind import kind_cells, kind_windows, window_size_note
from benchmarks.validation_windows import report_lines, weights_note
from model.checkpoint import load_generator
from training.build_data import split_of
from training.config import PRESETS, TrainConfig
from training.simulated import KINDS, SourceSeries, real_cine_pool
from training.trainer import simulated_samplers


def pools(config: TrainConfig = PRESETS["cpu"]) -> dict[str, list[SourceSeries]]:
    """The three pools of real cine series (empty where the real data is absent)."""
    held_out = real_cine_pool(lambda record: split_of(record) == "seen")
    validation = simulated_samplers(config)[2].series if held_out else []    # else: phantoms stand in, not anatomy
    return {"validation": validation, "held-out": held_out,
            "unseen centre": real_cine_pool(lambda record: split_of(record) == "unseen_centre")}


def pool_scores(generators: list, series: list[SourceSeries], count: int, config: TrainConfig) -> np.ndarray:
    """(kinds, 1 + generators, 2) mean (PSNR dB, SSIM) over ``count`` windows per kind: zero-filled, then each
    generator, single pass."""
    table = []
    for kind, samples in kind_windows(count, config, series=series).items():
        table.append([(psnr, ssim) for ssim, psnr in kind_cells(generators, samples)])
        print(kind, " ".join(f"{p:.2f}/{s:.3f}" for p, s in table[-1]), flush=True)
    return np.array(table)


def report(names: list[str], results: dict[str, np.ndarray]) -> list[str]:
    """The per-kind tables and the summary of margins over zero-filled (mean over kinds)."""
    rows = ["| pool | kind | n | zero-filled | " + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
    for pool, table in results.items():
        for kind, cells in zip(KINDS, table):
            rows.append(f"| {pool} | {kind} | | " + " | ".join(f"{p:.2f} / {s:.3f}" for p, s in cells) + " |")
    margins = {pool: table[:, 1:, 0].mean(axis=0) - table[:, 0, 0].mean() for pool, table in results.items()}
    rows += ["", "Margin over zero-filled, PSNR dB, mean over the kinds:", "",
             "| pool | zero-filled (dB) | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for pool, margin in margins.items():
        rows.append(f"| {pool} | {results[pool][:, 0, 0].mean():.2f} | "
                    + " | ".join(f"{m:+.2f}" for m in margin) + " |")
    if "validation" in margins:
        for other in (pool for pool in margins if pool != "validation"):
            rows.append(f"| validation − {other} | | "
                        + " | ".join(f"{d:+.2f}" for d in margins["validation"] - margins[other]) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.anatomy_gap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="+", required=True)
    parser.add_argument("--labels", nargs="+", help="a column name per weights file (default: the paths)")
    parser.add_argument("--windows", type=int, default=24, help="windows per input kind and pool")
    parser.add_argument("--out", type=Path, default=Path("docs/anatomy-gap.md"))
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.weights):
        parser.error("--labels: one per weights file")
    config = PRESETS["cpu"]
    found = {pool: series for pool, series in pools(config).items() if series}
    if not found:
        print("anatomy_gap: no real cine anatomy (../shared/data/real/cmrx25_imageshow_cine is absent); nothing to do",
              file=sys.stderr)
        return 2
    loaded = [load_generator(path)[0] for path in args.weights]
    names = args.labels or [f"`{path}`" for path in args.weights]
    results = {pool: pool_scores(loaded, series, args.windows, config) for pool, series in found.items()}
    command = shlex.join(["python", "-m", "benchmarks.anatomy_gap", *(sys.argv[1:] if argv is None else argv)])
    subjects = {pool: sorted({s.subject.split("/")[0] for s in series}) for pool, series in found.items()}
    lines = report_lines("Margins by anatomy pool (benchmarks/anatomy_gap.py)", command,
                         [weights_note(path) for path in args.weights],
                         f"{args.windows} per input kind and pool, the seeds of benchmarks.validation_by_kind, "
                         f"{window_size_note(config)}, single pass; PSNR dB / SSIM, mean over the windows. Subjects: "
                         + "; ".join(f"{pool}: {', '.join(names_)}" for pool, names_ in subjects.items()),
                         report(names, results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
