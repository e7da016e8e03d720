"""``python -m model info --config NAME``: parameters and FLOPs of a generator preset, as JSON."""
import argparse
import json
import sys

import torch

from model.config import PRESETS, config_asdict
from model.generator import GenreGenerator, flops_per_output_slice, parameter_counts

SLICE = {"coils": 10, "height": 246, "width": 512}  # one CMRxRecon cine slice after coil compression


def info(name: str) -> dict:
    config = PRESETS[name]
    with torch.device("meta"):
        trainable, total = parameter_counts(GenreGenerator(config))
    try:
        flops = flops_per_output_slice(config, **SLICE, device="meta")
    except (NotImplementedError, RuntimeError) as error:  # an op without a meta kernel: count on real tensors
        print(f"meta-device FLOP count failed ({error}); counting on cpu", file=sys.stderr)
        flops = flops_per_output_slice(config, **SLICE, device="cpu")
    return {"config": name, "trainable_params": trainable, "total_params": total,
            "flops_per_output_slice": flops, "slice": {**SLICE, "frames": config.adjacent_frames},
            "settings": config_asdict(config)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info_parser = commands.add_parser("info", help="parameter counts and FLOPs per output slice of a preset")
    info_parser.add_argument("--config", choices=sorted(PRESETS), default="paper")
    args = parser.parse_args(argv)
    print(json.dumps(info(args.config), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
