"""`python -m training --data ROOT [ROOT ...] --run-dir RUN_DIR [--preset cpu] [--workers N] [--masks drawn]
                    [--max-steps N] [--max-minutes M] [--resume] [--init-from WEIGHTS]
                    [--train-kinds KIND=W ...] [--train-kt PATTERN=W ...] [--train-acquisition NAME=VALUE ...]
                    [--rotate DEGREES] [--zoom FRACTION] [--ema DECAY]
                    [--no-ear --no-sda --no-residual --no-adv]`

Trains GENRE-CMR on CMRxRecon training trees as the 2023, 2024 and 2025 releases unpack (several at once), or
on a tree of `python -m training.build_data`. Under `torchrun --nnodes N --nproc_per_node G -m training ...`
the same command runs DistributedDataParallel training, each rank drawing its own windows.
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import torch

from model.allocator import retain_freed_memory
from simulation.geometry import Geometry
from training.config import PRESETS, TrainConfig
from training.layouts import LayoutError
from training.simulated import kt_probabilities
from training.trainer import Trainer


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", metavar="ROOT",
                        help="training tree roots, any official layout (not with a simulated-source preset)")
    parser.add_argument("--run-dir", type=Path, required=True, help="run directory (logs, checkpoints)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--model", help="model.config preset (overrides the training preset's)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lr-step-epochs", type=int, metavar="N",
                        help="multiply the learning rates by the preset's gamma every N epochs (default: the "
                             "preset's; N >= --epochs keeps them constant)")
    parser.add_argument("--gated-lr", type=float,
                        help="learning rate of the gated cascades' weights (models with model.config gated_from; "
                             "default 3e-4)")
    parser.add_argument("--gate-lr", type=float, help="learning rate of their gates (default 5e-3)")
    parser.add_argument("--seed", type=int, help="subject split, validation windows and (by default) the draws")
    parser.add_argument("--draw-seed", type=int,
                        help="seed of the training windows' draws (default: --seed); a further stage on the same "
                             "split gives a new one to see new windows")
    parser.add_argument("--all-subjects", action="store_true",
                        help="no validation subjects: train on every subject and export the last epoch")
    parser.add_argument("--train-kinds", nargs="+", metavar="KIND=WEIGHT",
                        help="simulated source: the training draws' input-kind mix, e.g. kt=0.3 uniform=0.4 "
                             "static=0.15 mapping=0.15 (validation windows keep the preset's mix)")
    parser.add_argument("--train-kt", nargs="+", metavar="PATTERN=WEIGHT",
                        help="simulated source: how often the training draws' k-t windows take each trajectory, e.g. "
                             "ktUniform=0.5 ktGaussian=0.25 ktRadial=0.25 (default: equally; validation: equally)")
    parser.add_argument("--train-acquisition", nargs="+", metavar="NAME=VALUE",
                        help="simulated source: the training draws' acquisition (simulation.realistic.Acquisition "
                             "fields, e.g. tissue_phase=0.5 or snr=6,80; validation windows keep the preset's)")
    parser.add_argument("--rotate", type=float, metavar="DEGREES",
                        help="simulated source: each training window's anatomy rotated by an angle drawn in "
                             "[-DEGREES, DEGREES] (simulation.geometry; validation windows are not)")
    parser.add_argument("--zoom", type=float, metavar="FRACTION",
                        help="simulated source: each training window's anatomy zoomed by a factor drawn "
                             "log-uniformly in [1 / (1 + FRACTION), 1 + FRACTION]")
    parser.add_argument("--ema", type=float, metavar="DECAY",
                        help="validate and export an exponential moving average of the generator's weights "
                             "(e.g. 0.998: a horizon of about 500 steps)")
    parser.add_argument("--adv-weight", type=float, help="constant on the adversarial term before CoV weighting")
    parser.add_argument("--adv-cap", type=float, metavar="WEIGHT",
                        help="the adversarial term's CoV weight at most this (e.g. 0.03; the others share the rest)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast for the networks on CUDA")
    parser.add_argument("--max-minutes", type=float, help="stop after this wall time (checkpoint kept)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in all (checkpoint kept)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader worker processes drawing windows (0: in the training process)")
    parser.add_argument("--windows-per-read", type=int,
                        help="training windows drawn from each slice read (default 4; 1: every window reads a new slice)")
    parser.add_argument("--masks", choices=("drawn", "release", "both"),
                        help="training-tree masks: drawn on the fly (default), the release's own, or either")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--init-from", type=Path, metavar="WEIGHTS",
                        help="start the generator from these exported weights (a further training stage)")
    parser.add_argument("--export", type=Path, help="write the trained generator (+ .json record) here")
    for name in ("ear", "sda", "residual", "adv"):
        parser.add_argument(f"--no-{name}", action="store_true", help=f"ablation: switch {name} off")
    return parser.parse_args(argv)


def parse_kind_weights(pairs: list[str], option: str = "--train-kinds") -> tuple[tuple[str, float], ...]:
    """``["kt=0.3", "uniform=0.4"]`` -> ``(("kt", 0.3), ("uniform", 0.4))``; a malformed pair is an error."""
    weights = []
    for pair in pairs:
        kind, sep, weight = pair.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or value <= 0:
            raise SystemExit(f"{option}: expected NAME=WEIGHT with a positive weight, got {pair!r}")
        weights.append((kind, value))
    return tuple(weights)


def build_config(args: argparse.Namespace) -> TrainConfig:
    overrides = {"model": args.model, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                 "lr": args.lr, "gated_lr": args.gated_lr, "gate_lr": args.gate_lr,
                 "lr_step_epochs": args.lr_step_epochs, "seed": args.seed, "draw_seed": args.draw_seed,
                 "adv_weight": args.adv_weight, "adv_cap": args.adv_cap, "ema_decay": args.ema,
                 "val_fraction": 0.0 if args.all_subjects else None,
                 "masks": args.masks, "windows_per_read": args.windows_per_read}
    if args.train_kinds:
        overrides["train_kind_weights"] = parse_kind_weights(args.train_kinds)
    if args.train_kt:
        overrides["train_kt_weights"] = parse_kind_weights(args.train_kt, "--train-kt")
        try:
            kt_probabilities(dict(overrides["train_kt_weights"]))
        except ValueError as error:
            raise SystemExit(f"--train-kt: {error}") from None
    if args.train_acquisition:
        try:
            overrides["train_acquisition"] = PRESETS[args.preset].acquisition.overridden(args.train_acquisition)
        except ValueError as error:
            raise SystemExit(f"--train-acquisition: {error}") from None
    if args.rotate is not None or args.zoom is not None:
        preset = PRESETS[args.preset].geometry
        try:
            overrides["geometry"] = Geometry(
                rotate_degrees=preset.rotate_degrees if args.rotate is None else args.rotate,
                zoom=preset.zoom if args.zoom is None else args.zoom)
        except ValueError as error:
            raise SystemExit(f"--rotate / --zoom: {error}") from None
    config = dataclasses.replace(PRESETS[args.preset], **{k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(config, use_ear=not args.no_ear, use_sda=not args.no_sda,
                               residual=not args.no_residual, use_adv=not args.no_adv,
                               amp=args.amp or config.amp)


def main(argv=None) -> int:
    args = parse_args(argv)
    retain_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    config = build_config(args)
    if config.source == "files" and args.data is None:
        print(f"--data is required: preset {args.preset} trains on a CMRxRecon-format training tree", file=sys.stderr)
        return 2
    if args.adv_cap is not None and not 0 < args.adv_cap <= 1:
        print(f"--adv-cap must lie in (0, 1], got {args.adv_cap}", file=sys.stderr)
        return 2
    if args.workers < 0 or (args.max_steps is not None and args.max_steps < 1) or config.lr_step_epochs < 1:
        print("--workers must be >= 0, --max-steps and --lr-step-epochs >= 1", file=sys.stderr)
        return 2
    try:
        trainer = Trainer(config, args.data, args.run_dir, device=device, workers=args.workers)
    except (LayoutError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.init_from and not args.resume:
        trainer.init_generator(args.init_from)
    if args.resume:
        checkpoint = args.run_dir / "last.pt"
        if not checkpoint.exists():
            print(f"--resume: no checkpoint at {checkpoint}", file=sys.stderr)
            return 2
        trainer.load_checkpoint(checkpoint)
    result = trainer.fit(max_minutes=args.max_minutes, max_steps=args.max_steps)
    if trainer.dist.is_main:
        print(json.dumps(result["history"][-1]))
        if args.export:
            sha = trainer.export_generator(args.export, {"command": " ".join(sys.argv)},
                                           best=config.val_fraction > 0)
            print(f"exported {args.export} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
