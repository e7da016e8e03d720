"""`make gpu-check`: the CUDA path proved on one GPU in one prepared run of about 8 minutes; writes docs/gpu.md.

    python -m benchmarks.gpu_check [--out docs/gpu.md] [--budget-minutes 7.5] [--sample data/sample]
                                   [--years 2023 2024 2025] [--checks predict throughput ...]
    python -m benchmarks.gpu_check --dry [--out build/gpu-check-dry/gpu.md]   # the same checks on the CPU, tiny

Checks (benchmarks/gpu_sections.py), in this order: environment; ddp (a 1-process NCCL group, the shipped
generator under DistributedDataParallel, one step, all_reduce); oom_retry (a genuine CUDA out-of-memory forced
once by a memory cap: the reconstructor halves its batch and gives the same images); throughput (images/s and
peak GPU memory of the shipped and the paper generator at batch sizes 1-16, fp32 and fp16); training (20 Trainer
steps with AMP on the paper generator); rates (windows/s one AMP training step of the shipped and of the paper
generator consumes, against windows/s the simulated-window loader produces with 2 to N-2 workers); predict
(predict.py on the sample trees on the CPU, on CUDA in fp32 and with --amp: w = 1 each, the largest relative
difference to the CPU outputs, PSNR against the ground truth).

Each check runs in its own process with a share of the time budget as its timeout, so a check that fails, hangs
or kills its process (a CUDA error, an NCCL hang) is recorded in the report and the others still run; the report
is written whatever happens. Exit status 0 when every check passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks.gpu_sections import CHECKS, FAIL, PASS, CheckOptions, Section  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ERROR, TIMEOUT, SKIPPED = "ERROR", "TIMEOUT", "SKIPPED"
# seconds each check may use at most (its share of the 8 minutes; a check that ends early leaves its time to the
# next); a check gets the smaller of its share and what is left of the whole budget
SHARES = {"environment": 30, "ddp": 45, "oom_retry": 45, "throughput": 90, "training": 130, "rates": 75,
          "predict": 240}
MIN_START_S = 5.0          # a check is not started with less time than this left
GRACE_S = 20.0             # beyond its share, before its process is killed (its own loops stop at the share)


@dataclass
class CheckResult:
    name: str
    status: str                # PASS | FAIL | ERROR | TIMEOUT | SKIPPED
    seconds: float
    summary: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""

    @classmethod
    def from_section(cls, name: str, section: Section, seconds: float) -> "CheckResult":
        return cls(name, section.status, seconds, section.summary, section.rows, section.notes)


def default_options(dry: bool, work: Path, sample: Path | None, years: tuple[int, ...] | None) -> CheckOptions:
    """The GPU run's sizes, or the dry run's (CPU, tiny generator written under ``work``, a tiny tree)."""
    if dry:
        return CheckOptions(dry=True, work=work, weights=work / "tiny.pt", paper_preset="tiny",
                            sample=sample or work / "sample", years=years or (2024,), batch_sizes=(1, 2), coils=4,
                            height=32, width=40, repeats=1, train_model="tiny", train_steps=2, train_crop=0,
                            workers=0, rate_steps=1, loader_workers=(0, 1))
    return CheckOptions(dry=False, work=work, weights=REPO_ROOT / "weights" / "genre_cmr.pt", paper_preset="paper",
                        sample=sample or REPO_ROOT / "data" / "sample", years=years or (2023, 2024, 2025),
                        batch_sizes=(1, 2, 4, 8, 16), coils=10, height=246, width=512, repeats=2,
                        train_model="paper", train_steps=20, train_crop=96, workers=4, rate_steps=5,
                        loader_workers=tuple(sorted({2, 4, 8, max(2, (os.cpu_count() or 2) - 2)})))


def write_tiny_weights(path: Path) -> None:
    """A random 'tiny' generator checkpoint: the dry run loads weights exactly as the GPU run does."""
    import torch

    from model.checkpoint import save_generator
    from model.config import preset
    from model.generator import GenreGenerator

    torch.manual_seed(0)
    save_generator(path, preset("tiny"), GenreGenerator(preset("tiny")).state_dict(),
                   {"note": "random initialisation for the gpu-check dry run"})


# ---------------------------------------------------------------------------------------------------------
# Running the checks.

def run_in_process(name: str, options: CheckOptions) -> CheckResult:
    started = time.monotonic()
    try:
        section = CHECKS[name](options)
    except Exception as error:   # noqa: BLE001 - a failing check is a result, never the end of the run
        return CheckResult(name, ERROR, time.monotonic() - started, f"{type(error).__name__}: {error}",
                           error=traceback.format_exc(limit=8))
    return CheckResult.from_section(name, section, time.monotonic() - started)


def run_isolated(name: str, options: CheckOptions, timeout: float, command: list[str] | None = None) -> CheckResult:
    """The check in a child process (its own session, killed with its children at ``timeout``); its result
    comes back as JSON. ``command`` replaces the child's command line (tests)."""
    folder = options.work / "results"
    folder.mkdir(parents=True, exist_ok=True)
    options_path, result_path = folder / f"{name}.options.json", folder / f"{name}.result.json"
    options_path.write_text(options.to_json())
    result_path.unlink(missing_ok=True)
    command = command or [sys.executable, "-m", "benchmarks.gpu_check", "--run-check", name, "--options",
                          str(options_path), "--result", str(result_path)]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return CheckResult(name, TIMEOUT, time.monotonic() - started, f"killed after {timeout:.0f} s",
                           error=_tail(output))
    seconds = time.monotonic() - started
    if result_path.is_file():
        result = CheckResult(**json.loads(result_path.read_text()))
        result.seconds = seconds
        return result
    return CheckResult(name, ERROR, seconds, f"the check's process ended with status {process.returncode} "
                       f"and no result", error=_tail(output))


def _tail(text: str | None, lines: int = 25) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def run_checks(options: CheckOptions, names: list[str], budget_s: float, isolate: bool = True) -> list[CheckResult]:
    """Every check in order within ``budget_s`` seconds in all; each gets min(its share, what is left)."""
    end = time.time() + budget_s
    results = []
    for name in names:
        left = end - time.time()
        if left < MIN_START_S:
            results.append(CheckResult(name, SKIPPED, 0.0, "not started: the time budget was used up"))
            continue
        share = min(SHARES.get(name, 60), left)
        options.deadline = time.time() + share
        result = (run_isolated(name, options, min(share + GRACE_S, left)) if isolate
                  else run_in_process(name, options))
        print(f"{result.status:8s} {name:12s} {result.seconds:6.1f} s  {result.summary}", flush=True)
        results.append(result)
    return results


# ---------------------------------------------------------------------------------------------------------
# The report.

def machine_line(dry: bool) -> str:
    import torch

    from model.provenance import cpu_model

    gpu = "none (dry run on the CPU)" if dry or not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    return (f"{cpu_model()}, {os.cpu_count()} logical cores; GPU: {gpu}; torch {torch.__version__} "
            f"(CUDA {torch.version.cuda}), Python {platform.python_version()}")


def _table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows)]


def format_report(results: list[CheckResult], command: str, machine: str, dry: bool, budget_s: float,
                  wall_s: float) -> str:
    lines = ["# GPU check (benchmarks/gpu_check.py)", ""]
    if dry:
        lines += ["**Dry run on the CPU** (tiny sizes, gloo for NCCL, fp16 rows in fp32): it proves the script, "
                  "not the GPU. The GPU report comes from `make gpu-check` on a GPU machine.", ""]
    passed = sum(r.status == PASS for r in results)
    lines += [f"- Command: `{command}`", f"- Machine: {machine}",
              f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}",
              f"- Wall time: {wall_s:.0f} s of a {budget_s:.0f} s budget; {passed} of {len(results)} checks passed",
              "", *_table([{"check": r.name, "status": r.status, "seconds": f"{r.seconds:.1f}",
                             "summary": r.summary} for r in results])]
    for result in results:
        lines += ["", f"## {result.name}: {result.status}", "", result.summary]
        if result.rows:
            lines += [""] + _table(result.rows)
        if result.notes:
            lines += [""] + [f"- {note}" for note in result.notes]
        if result.error:
            lines += ["", "```", result.error, "```"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="the same checks on the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, help="Markdown report (default docs/gpu.md; dry: under --work)")
    parser.add_argument("--work", type=Path, help="scratch folder (default build/gpu-check[-dry])")
    parser.add_argument("--budget-minutes", type=float, default=7.5, help="wall time for all checks together")
    parser.add_argument("--sample", type=Path, help="sample trees root (default data/sample; built when absent)")
    parser.add_argument("--years", type=int, nargs="+", choices=(2023, 2024, 2025))
    parser.add_argument("--checks", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    parser.add_argument("--in-process", action="store_true", help="run the checks in this process (no isolation)")
    parser.add_argument("--run-check", choices=list(CHECKS), help=argparse.SUPPRESS)
    parser.add_argument("--options", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_check:              # a child process: one check, its result as JSON
        result = run_in_process(args.run_check, CheckOptions.from_json(args.options.read_text()))
        args.result.write_text(json.dumps(asdict(result)))
        return 0
    started = time.monotonic()
    work = args.work or REPO_ROOT / "build" / ("gpu-check-dry" if args.dry else "gpu-check")
    out = args.out or (work / "gpu.md" if args.dry else REPO_ROOT / "docs" / "gpu.md")
    work.mkdir(parents=True, exist_ok=True)
    options = default_options(args.dry, work, args.sample, tuple(args.years) if args.years else None)
    if args.dry:
        write_tiny_weights(options.weights)
    budget_s = args.budget_minutes * 60
    results = run_checks(options, args.checks, budget_s, isolate=not args.in_process)
    command = shlex.join(["python", "-m", "benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(format_report(results, command, machine_line(args.dry), args.dry, budget_s,
                                 time.monotonic() - started))
    (work / "gpu_check.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    print(f"wrote {out}")
    return 0 if all(r.status == PASS for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
