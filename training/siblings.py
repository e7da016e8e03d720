"""Train sibling generators side by side on one device, each on its own draws, and average them.

    python -m training.siblings --run-dir RUN --draw-seeds 381 382 ... --out B.pt [--threads 1] -- TRAINING ARGS

One training step of the CPU-width generator is bound by kernel launches, not arithmetic (docs/gpu.md): a single
process leaves most of a large GPU idle. Several processes of the same recipe, started from the same weights and
differing only in their draw seeds, fill it; their equal-weight mean (``training.average``, a "model soup") stays
in the basin they started in. Each sibling runs ``python -m training TRAINING ARGS --run-dir RUN/B<seed>
--draw-seed SEED --export RUN/B<seed>.pt`` and logs to RUN/B<seed>.log; the mean of those that export is ``--out``,
whose record names each sibling's sha256 and the first one's training record.
"""
import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from training.average import average_weights

# the launcher sets the first three per sibling; every sibling starts afresh in its own run dir, so no --resume
_OWN_FLAGS = ("--run-dir", "--draw-seed", "--export", "--resume")


@dataclass(frozen=True)
class Sibling:
    seed: int
    run_dir: Path
    export: Path
    log: Path
    command: list[str]


def plan_siblings(run_dir: Path, draw_seeds: list[int], training_args: list[str]) -> list[Sibling]:
    """One training command per draw seed, every other argument shared; rejects arguments the launcher owns."""
    if not draw_seeds:
        raise ValueError("at least one draw seed")
    if len(set(draw_seeds)) != len(draw_seeds):
        raise ValueError(f"draw seeds must differ: {draw_seeds}")
    flags = [arg.split("=")[0] for arg in training_args]
    for flag in flags:
        if flag in _OWN_FLAGS:
            raise ValueError(f"{flag}: the launcher sets it for each sibling")
    if "--init-from" not in flags:
        # siblings from different random starts are not in one basin: their mean is no generator
        raise ValueError("siblings must start from one set of weights: give --init-from")
    siblings = []
    for seed in draw_seeds:
        name = f"B{seed}"
        command = [sys.executable, "-m", "training", *training_args, "--run-dir", str(run_dir / name),
                   "--draw-seed", str(seed), "--export", str(run_dir / f"{name}.pt")]
        siblings.append(Sibling(seed, run_dir / name, run_dir / f"{name}.pt", run_dir / f"{name}.log", command))
    return siblings


def run_siblings(siblings: list[Sibling], threads: int = 1) -> list[Sibling]:
    """Start every sibling at once, wait for all; returns those that exited 0 with their export written."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    running = []
    for sibling in siblings:
        sibling.log.parent.mkdir(parents=True, exist_ok=True)
        with open(sibling.log, "w") as log:
            running.append((sibling, subprocess.Popen(sibling.command, stdout=log, stderr=subprocess.STDOUT,
                                                      env=env)))
    done = []
    for sibling, process in running:
        code = process.wait()
        if code == 0 and sibling.export.exists():
            done.append(sibling)
        else:
            print(f"sibling {sibling.seed} failed (exit {code}); see {sibling.log}", file=sys.stderr)
    return done


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, training_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m training.siblings", description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s --run-dir RUN --draw-seeds S [S ...] --out B.pt "
                                           "[--threads N] -- TRAINING ARGS")
    parser.add_argument("--run-dir", type=Path, required=True, help="one folder for every sibling's run")
    parser.add_argument("--draw-seeds", type=int, nargs="+", required=True, help="one sibling per seed")
    parser.add_argument("--out", type=Path, required=True, help="the siblings' equal-weight mean")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each sibling")
    args = parser.parse_args(own)
    if args.out.exists():
        parser.error(f"--out {args.out} exists: refusing to overwrite weights")
    try:
        siblings = plan_siblings(args.run_dir, args.draw_seeds, training_args)
    except ValueError as error:
        parser.error(str(error))
    done = run_siblings(siblings, args.threads)
    print(f"siblings exported: {len(done)} of {len(siblings)}")
    if not done:
        return 1
    command = " ".join(["python", "-m", "training.siblings", *argv])
    sha = average_weights([s.export for s in done], args.out, command=command)
    print(f"wrote {args.out} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
