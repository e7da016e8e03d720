"""The allocator tax: predict.py and training with glibc's default heap settings and with
``model.allocator.retain_freed_memory``, side by side in one run on the same real-shaped inputs.

    python -m benchmarks.bench_allocator [--work build/bench_allocator] [--out docs/benchmarks.md]

Inputs, written once under --work: one 2024 Task-2 file of a real cine shape (12 frames x 1 slice x 10 coils,
the native size of a real cine series in ../shared/data/real, else 189 x 448 phantom; ktUniform 8) and a
one-file 2025 training tree of the same k-space. Each measurement is its own subprocess, one with
``GENRE_GLIBC_MALLOC_DEFAULTS=1`` (glibc's defaults), one without (the program's own setting); wait4 gives
user and system CPU seconds and the peak resident set. The Markdown section between this script's markers in
--out is replaced (appended the first time).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_predict import replace_section
from benchmarks.evaluate import REPO_ROOT
from model.allocator import OPT_OUT
from model.provenance import format_machine, machine_summary

BEGIN, END = "<!-- bench_allocator:begin -->", "<!-- bench_allocator:end -->"
FALLBACK_SHAPE = (189, 448)


@dataclass
class Run:
    scenario: str
    heap: str                  # "glibc defaults" | "retained"
    exit_code: int
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss_mib: float

    @property
    def system_share(self) -> float:
        return self.system_seconds / max(self.user_seconds + self.system_seconds, 1e-9)


def write_inputs(work: Path, seed: int = 0) -> tuple[Path, Path, tuple[int, ...]]:
    """(predict input root, training tree root, k-space shape), written once and reused."""
    predict_root, train_root = work / "input", work / "train"
    shape_file = work / "shape.json"
    if shape_file.exists():
        return predict_root, train_root, tuple(json.loads(shape_file.read_text()))
    from challenge.masks import make_mask
    from challenge.matio import write_kspace_v73
    from tools.sample_data import Case, write_case
    from simulation.acquisition import simulate_kspace
    from simulation.anatomy import RealDataMissing, list_cine_series, load_cine_series
    from simulation.phantom import phantom_series

    rng = np.random.default_rng(seed)
    try:
        magnitude = load_cine_series(next(s for s in list_cine_series() if s.view == "sax"))
    except RealDataMissing:
        magnitude = phantom_series("cine", 12, *FALLBACK_SHAPE, rng)
    kspace, reference = simulate_kspace(magnitude[:, None], n_coils=10, rng=rng)
    nt, _, nc, ny, nx = kspace.shape
    mask = make_mask("ktUniform", nt, ny, nx, 8, 16, rng)
    folder = "Cine/TestSet/{}_Task2/P001"
    write_case(work, kspace, reference, mask,
               Case(f"{folder.format('UnderSample')}/cine_sax_kus_ktUniform8.mat", "cine", nt, 1, nc, ny, nx,
                    "ktUniform", 8, mask_relative=f"{folder.format('Mask')}/cine_sax_mask_ktUniform8.mat"),
               crops=(False,))
    write_kspace_v73(train_root / "MultiCoil/Cine/TrainingSet/FullSample/Center001/Unknown/P001/cine_sax.mat",
                     "kspace_full", kspace)
    shape_file.write_text(json.dumps(list(kspace.shape)))
    return predict_root, train_root, tuple(kspace.shape)


def measure(scenario: str, command: list[str], retained: bool, log: Path) -> Run:
    env = dict(os.environ)
    env.pop(OPT_OUT, None)
    if not retained:
        env[OPT_OUT] = "1"
    start = time.perf_counter()
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    return Run(scenario, "retained" if retained else "glibc defaults", os.waitstatus_to_exitcode(status), wall,
               usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024)


def format_section(runs: list[Run], shape: tuple[int, ...], commands: dict[str, str], command: str,
                   machine: dict) -> str:
    lines = [BEGIN, "## Allocator tax (benchmarks/bench_allocator.py)", "",
             f"`{command}` on {datetime.date.today().isoformat()}; {format_machine(machine)}.",
             f"Input k-space {tuple(shape)} (nt, nz, nc, ny, nx) complex64. Commands:"]
    lines += [f"- {name}: `{text}`" for name, text in commands.items()]
    lines += ["", "| scenario | heap | exit | wall s | user s | system s | system share | peak RSS MiB | speed-up |",
              "|---|---|---|---|---|---|---|---|---|"]
    base = {r.scenario: r for r in runs if r.heap == "glibc defaults"}
    for r in runs:
        speedup = base[r.scenario].wall_seconds / r.wall_seconds if r.scenario in base else float("nan")
        lines.append(f"| {r.scenario} | {r.heap} | {r.exit_code} | {r.wall_seconds:.1f} | {r.user_seconds:.1f} | "
                     f"{r.system_seconds:.1f} | {r.system_share:.0%} | {r.peak_rss_mib:.0f} | {speedup:.2f}x |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_allocator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("build/bench_allocator"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--scenarios", nargs="+", default=["predict", "train"], choices=("predict", "train"))
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    predict_root, train_root, shape = write_inputs(work)
    python = sys.executable
    commands = {
        "predict": [python, "predict.py", "--input", str(predict_root), "--output", str(work / "output"),
                    "--ensemble", "1"],
        "train": [python, "-m", "training", "--data", str(train_root), "--run-dir", str(work / "run"),
                  "--preset", "smoke", "--model", "small-10-view-sharing", "--max-steps", str(args.train_steps),
                  "--no-sda"],            # one file is one domain; SDA needs two
    }
    runs = []
    for scenario in args.scenarios:
        for retained in (False, True):
            shutil.rmtree(work / "run", ignore_errors=True)          # every training run starts fresh
            run = measure(scenario, commands[scenario], retained, work / f"{scenario}_{int(retained)}.log")
            print(json.dumps(asdict(run)), flush=True)
            runs.append(run)
    shown = {k: shlex.join(["python", *v[1:]]).replace(str(work), str(args.work)) for k, v in commands.items()
             if k in args.scenarios}
    command = shlex.join(["python", "-m", "benchmarks.bench_allocator", *(sys.argv[1:] if argv is None else argv)])
    text = args.out.read_text() if args.out.exists() else "# Benchmarks\n"
    args.out.write_text(replace_section(text, format_section(runs, shape, shown, command, machine_summary()),
                                        BEGIN, END))
    print(f"wrote {args.out}")
    return 0 if all(r.exit_code == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
