"""Container entry point: reconstruct every CMRxRecon file under --input into --output.

    python predict.py [--input /input] [--output /output] [--method genre] [--shard K/N] [--resume] ...

Exit status: 0 when every file has a valid output (success rate w = 1), 1 when some file failed, there was
nothing to reconstruct or the report could not be written, 2 for unusable arguments or environments (an
unknown --device, CUDA asked for and absent, a malformed RANK/WORLD_SIZE) or an output root that cannot be
written. The report table goes to stdout (the organisers' log), progress bars to stderr; a closed stdout or
stderr never stops the run.
"""
import argparse
import logging
import sys
from pathlib import Path

from challenge.memory import DEFAULT_MAX_MEMORY_BYTES
from challenge.runner import RunOptions, RunSetupError, run
from challenge.safe_io import protect_standard_streams
from model.allocator import retain_freed_memory
from model.reconstruction import (DEFAULT_BATCH_SIZE, DEFAULT_ENSEMBLE, DEFAULT_HARD_DC, DEFAULT_WEIGHTS, METHODS,
                                  peer_methods)
from model.reflection import ENSEMBLES


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 0 <= K < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like K/N, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text!r} needs 0 <= K < N")
    return index, count


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=Path("/input"), help="input root (read only)")
    parser.add_argument("--output", type=Path, default=Path("/output"), help="output root")
    parser.add_argument("--method", choices=METHODS + peer_methods(), default="genre",
                        help="genre, or a classical baseline; in a development checkout also the peers of peers/")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="GENRE-CMR checkpoint (a learned peer's own, default runs/peers/NAME/NAME.pt)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                        help="frames per forward pass (halved automatically on CUDA out-of-memory)")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast for the network on cuda")
    parser.add_argument("--ensemble", type=int, choices=sorted(ENSEMBLES), default=DEFAULT_ENSEMBLE,
                        help="GENRE: reflections averaged per window (1 none, 2 + read-out, 4 + phase-encode, both)")
    parser.add_argument("--adapt", type=int, default=0, metavar="STEPS",
                        help="GENRE: fine-tune a copy of the network on each volume's own measurements (SSDU-style "
                             "held-back loss) for at most STEPS steps; kept only if it predicts a validation set of "
                             "measurements it never saw better (default 0: off; docs/adaptation-eval.md)")
    parser.add_argument("--adapt-seconds", type=float, default=120.0,
                        help="wall-time budget of --adapt per volume (default 120)")
    parser.add_argument("--hard-dc", action=argparse.BooleanOptionalAction, default=DEFAULT_HARD_DC,
                        help="GENRE: each output takes the measured k-space where it was sampled, per coil "
                             "(hard data consistency after the last cascade)")
    parser.add_argument("--shard", type=parse_shard, default=None,
                        help="K/N: this process does files i with i %% N == K (default: RANK/WORLD_SIZE "
                             "under torchrun, else the whole tree)")
    parser.add_argument("--resume", action="store_true", help="keep outputs that already validate")
    parser.add_argument("--crop", action="store_true", help="validation-phase run4Ranking crop")
    parser.add_argument("--max-memory-gb", "--max-slab-gb", dest="max_memory_gb", type=positive_float,
                        default=DEFAULT_MAX_MEMORY_BYTES / 2 ** 30,
                        help="bound on the process's peak host memory in GiB: larger volumes are read and "
                             "reconstructed in slabs of slices, a volume whose one slice does not fit fails "
                             "(--max-slab-gb is the older name)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    protect_standard_streams()          # a closed stdout/stderr pipe must neither block nor kill the run
    args = parse_args(argv)
    retain_freed_memory()
    logging.basicConfig(level=args.log_level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    options = RunOptions(input_root=args.input, output_root=args.output, method=args.method,
                         weights=args.weights, device=args.device, batch_size=args.batch_size, amp=args.amp,
                         ensemble=args.ensemble, adapt_steps=args.adapt, adapt_seconds=args.adapt_seconds,
                         hard_dc=args.hard_dc,
                         shard=args.shard, resume=args.resume, crop=args.crop,
                         max_memory_bytes=int(args.max_memory_gb * 2 ** 30))
    try:
        report = run(options)
    except RunSetupError as error:
        print(f"ERROR: {error}", flush=True)     # stdout: the organisers' only log
        return 2
    print(report.format_text(), flush=True)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
