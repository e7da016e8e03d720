"""`python -m training.export RUN_DIR/last.pt --out WEIGHTS.pt [--best] [--data ROOT ...]`

Writes a training checkpoint as a weights file with the record that `python -m training --export` writes at the end
of a run, for a run stopped by hand or one started without `--export`. The training configuration comes from the
checkpoint itself, so no training flag has to be repeated. The weights are those validation scored: the moving
average where the run kept one (`--ema`), else the generator; `--best` takes the run's best-validation epoch
(RUN_DIR/best.pt) instead of the checkpoint's own.
"""
import argparse
import sys
from pathlib import Path

import torch

from training.config import TrainConfig
from training.layouts import LayoutError
from training.trainer import Trainer


def export_checkpoint(checkpoint: Path, out: Path, data: list[Path] | None = None, best: bool = False,
                      extra_record: dict | None = None) -> str:
    """Write ``checkpoint`` (a Trainer checkpoint, e.g. RUN_DIR/last.pt) as the weights file ``out`` and its
    record; returns the file's sha256. ``data``: the training trees of a run on files (ignored by the simulated
    source), for the record's data summary."""
    checkpoint = Path(checkpoint)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "train_config" not in state or "generator" not in state:
        raise ValueError(f"{checkpoint}: not a training checkpoint (no train_config / generator)")
    config = TrainConfig.from_dict(state["train_config"])
    if config.source == "files" and not data:
        raise ValueError(f"{checkpoint}: the run trained on files; name its training trees with --data")
    trainer = Trainer(config, data, checkpoint.parent)
    trainer.load_checkpoint(checkpoint)
    record = {"exported_from": {"checkpoint": str(checkpoint), "step": trainer.step, "epoch": trainer.epoch},
              **(extra_record or {})}
    return trainer.export_generator(Path(out), record, best=best)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a training checkpoint, e.g. RUN_DIR/last.pt")
    parser.add_argument("--out", type=Path, required=True, help="the weights file to write (+ its .json record)")
    parser.add_argument("--best", action="store_true", help="the best-validation epoch (RUN_DIR/best.pt)")
    parser.add_argument("--data", type=Path, nargs="+", metavar="ROOT", help="the training trees of a run on files")
    args = parser.parse_args(argv)
    words = sys.argv[1:] if argv is None else list(argv)
    if args.out.exists():    # e.g. the shipped weights: never replaced by accident
        parser.error(f"--out {args.out} exists: refusing to overwrite weights")
    if not args.checkpoint.is_file():
        print(f"error: {args.checkpoint}: no such checkpoint", file=sys.stderr)
        return 2
    if args.best and not (args.checkpoint.parent / "best.pt").is_file():
        print(f"error: --best: no {args.checkpoint.parent / 'best.pt'} (the run validated on no held subject)",
              file=sys.stderr)
        return 2
    try:
        sha = export_checkpoint(args.checkpoint, args.out, args.data, args.best,
                                {"command": " ".join(["python -m training.export", *words])})
    except (ValueError, LayoutError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {args.out} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
