"""Average the weights of generators fine-tuned from one another (a "model soup", Wortsman et al. 2022).

    python -m training.average A.pt B.pt [C.pt ...] --out SOUP.pt [--weights 0.5 0.5 ...]

Stages trained one from the other stay in one basin of the loss, so their weighted mean is a generator too,
often better than each on data neither was selected on. The inputs must share one model configuration; the
output's record names every input with its sha256 and weight, and the record of the first input's training.
"""
import argparse
import sys
from pathlib import Path

import torch

from model.checkpoint import save_generator, verified_record
from model.config import config_from_dict
from model.interface import WeightsUnavailable


def average_state(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts with the same keys; tensors that are not floating point must be equal."""
    if len(states) != len(weights) or not states:
        raise ValueError("one weight per state dict, at least one")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    averaged = {}
    for key, first in states[0].items():
        tensors = [state[key] for state in states]
        if first.is_floating_point():
            averaged[key] = sum(w / total * t.float() for w, t in zip(weights, tensors)).to(first.dtype)
        elif all(torch.equal(first, t) for t in tensors[1:]):
            averaged[key] = first
        else:
            raise ValueError(f"{key}: integer tensors differ between the inputs")
    return averaged


def average_weights(paths: list[Path], out: Path, weights: list[float] | None = None, command: str = "") -> str:
    """Write the weighted mean of the checkpoints ``paths`` (sha256-checked) to ``out``; returns its sha256."""
    weights = weights or [1.0] * len(paths)
    records = [verified_record(path) for path in paths]
    checkpoints = [torch.load(path, map_location="cpu", weights_only=True) for path in paths]
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        if checkpoint["config"] != checkpoints[0]["config"]:
            raise ValueError(f"{path}: its model configuration differs from {paths[0]}'s")
        if checkpoint["state_dict"].keys() != checkpoints[0]["state_dict"].keys():
            raise ValueError(f"{path}: its parameters differ from {paths[0]}'s")
    state = average_state([c["state_dict"] for c in checkpoints], weights)
    record = {"averaged_from": [{"weights": str(p), "sha256": r["sha256"], "weight": w, "steps": r.get("steps")}
                                for p, r, w in zip(paths, records, weights)],
              "train_config": records[0].get("train_config"), "init_from": records[0].get("init_from"),
              "command": command}
    return save_generator(out, config_from_dict(checkpoints[0]["config"]), state, record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.average", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", type=Path, nargs="+", help="generator weights files (each with its .json record)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=float, nargs="+", help="one per input (default: equal)")
    args = parser.parse_args(argv)
    if args.weights is not None and len(args.weights) != len(args.inputs):
        parser.error(f"--weights: {len(args.weights)} given for {len(args.inputs)} inputs")
    if args.out.exists():   # an input included
        parser.error(f"--out {args.out} exists: refusing to overwrite weights")
    command = " ".join(["python", "-m", "training.average", *(sys.argv[1:] if argv is None else argv)])
    try:
        sha = average_weights(args.inputs, args.out, args.weights, command)
    except (ValueError, OSError, WeightsUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
