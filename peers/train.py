"""Train a learned peer on the project's own training windows, with the shipped generator's budget.

    python -m peers.train --peer varnet [--run-dir runs/peers/varnet] [--preset cpu] [--steps 500]
                          [--max-minutes 68] [--hparams '{"num_cascades": 12}'] [--workers 0] [--data ROOT ...]

The windows are GENRE's: the training preset's sampler (training.trainer.window_samplers: for preset ``cpu``
native-scale windows simulated on the fly from the training subjects' real cine anatomy and phantoms, every input
kind, 96-column readout crops), drawn epoch by epoch with the same seeds (training.loader.epoch_loader), and the
same fixed validation windows of the validation subjects. The peer sees each window's centre frame (it is a
one-frame method) and learns with its authors' loss, optimiser and learning-rate schedule (the peer module's
``training_loss``, ``optimiser`` and, where it has one, ``scheduler``). Training stops at ``--steps`` optimiser
steps or ``--max-minutes`` of wall time, whichever comes first (the preset's epoch count does not apply); each epoch ends with a validation (SSIM and PSNR as training.trainer.Trainer.validate computes them) and
the epoch with the best validation SSIM is exported (GENRE's selection rule) to RUN_DIR/NAME.pt with its record.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from model.metrics import psnr
from peers import PEERS, RUNS
from peers.checkpoint import save_peer
from training.config import PRESETS, TrainConfig
from training.dataset import fixed_validation_samples
from training.loader import epoch_loader
from training.losses import ssim_loss
from training.trainer import hardware_description, window_samplers

log = logging.getLogger("peers.train")


def learned_module(peer: str):
    if peer not in PEERS or not PEERS[peer].learned:
        raise ValueError(f"{peer!r} is not a learned peer; choose one of "
                         f"{', '.join(name for name, p in PEERS.items() if p.learned)}")
    return importlib.import_module(PEERS[peer].module)


@torch.inference_mode()
def validate(module, network, samples, device) -> dict[str, float]:
    network.eval()
    ssims, psnrs = [], []
    for sample in samples:
        sample = sample.to(device)
        image = module.window_image(network, sample).float()
        ssims.append(1 - float(ssim_loss(image, sample.target, sample.data_range)))
        psnrs.append(psnr(image, sample.target, sample.data_range))
    network.train()
    return {"val_ssim": float(np.mean(ssims)), "val_psnr": float(np.mean(psnrs))}


def train_peer(peer: str, config: TrainConfig, run_dir: Path, *, data: list[Path] | None = None,
               steps: int | None = None, max_minutes: float | None = None, hparams: dict | None = None,
               workers: int = 0, device: str = "cpu", samplers: tuple | None = None,
               export: Path | None = None, command: str = "") -> dict:
    """Train ``peer`` on ``config``'s windows until ``steps`` or ``max_minutes`` (one is required) is spent, in
    epochs of ``config.steps_per_epoch`` windows; returns the exported record. ``samplers`` replaces
    window_samplers' (domains, training, validation, summary) (tests)."""
    if steps is None and max_minutes is None:
        raise ValueError("a budget is required: steps and/or max_minutes")
    module = learned_module(peer)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    _, train_sampler, val_sampler, data_summary = samplers or window_samplers(config, data, run_dir)
    val_samples = fixed_validation_samples(val_sampler, config.val_samples, config.curriculum[-1][1], config.seed)
    torch.manual_seed(config.seed)
    hparams = {**module.HPARAMS, **(hparams or {})}
    network = module.new_network(hparams).to(device).train()
    optimiser = module.optimiser(network.parameters())
    # the peer's learning-rate schedule, stepped per optimiser step as its authors' trainer does (none: constant)
    schedule = module.scheduler(optimiser) if hasattr(module, "scheduler") else None
    started = time.time()
    deadline = started + 60 * max_minutes if max_minutes is not None else None
    history = [{"epoch": 0, "step": 0, **validate(module, network, val_samples, device)}]
    log.info("initial validation: %s", history[-1])
    best = None
    step, epoch, stop = 0, 0, False
    with open(run_dir / "train_log.csv", "w", newline="") as log_file:
        writer = csv.writer(log_file)
        writer.writerow(["epoch", "step", "pattern", "acceleration", "loss", "seconds"])
        while not stop:                              # the budget, not config.epochs, ends the run
            for sample in epoch_loader(train_sampler, config.accelerations(epoch), config.steps_per_epoch,
                                       config.seed, 0, epoch, workers):
                loss = module.training_loss(network, sample.to(device))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                if schedule is not None:
                    schedule.step()
                step += 1
                writer.writerow([epoch, step, sample.pattern, sample.acceleration, f"{loss.item():.6f}",
                                 f"{time.time() - started:.1f}"])
                stop = (steps is not None and step >= steps) or (deadline is not None and time.time() > deadline)
                if stop:
                    break
            epoch += 1
            metrics = {"epoch": epoch, "step": step, **validate(module, network, val_samples, device),
                       "minutes": (time.time() - started) / 60}
            history.append(metrics)
            log.info("epoch %d: %s", epoch, metrics)
            (run_dir / "metrics.json").write_text(json.dumps(history, indent=2))
            # GENRE's rule: the best validation epoch, the last one when no subject is held out for validation
            if best is None or config.val_fraction == 0 or metrics["val_ssim"] >= best[0]["val_ssim"]:
                best = (metrics, {k: v.detach().cpu().clone() for k, v in network.state_dict().items()})
    selected, state = best
    record = {"peer": peer, "train_config": config.to_dict(), "data": data_summary, "steps": step,
              "epochs": epoch, "selected": {"epoch": selected["epoch"], "by": "best validation SSIM",
                                            "val_ssim": selected["val_ssim"], "val_psnr": selected["val_psnr"]},
              "wall_time_minutes": round((time.time() - started) / 60, 2),
              "finished_utc": datetime.now(timezone.utc).isoformat(timespec="minutes"),
              "hardware": hardware_description(device), "validation": history,
              "budget": {"steps": steps, "max_minutes": max_minutes}, "command": command}
    export = Path(export) if export is not None else run_dir / f"{peer}.pt"
    record["sha256"] = save_peer(export, peer, hparams, state, record)
    return record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m peers.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", required=True, choices=[name for name, peer in PEERS.items() if peer.learned])
    parser.add_argument("--run-dir", type=Path, help="logs and weights (default runs/peers/PEER)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="training.config preset: windows")
    parser.add_argument("--data", type=Path, nargs="+", metavar="ROOT", help="training trees (files presets)")
    parser.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--max-minutes", type=float, help="stop after this wall time")
    parser.add_argument("--hparams", type=json.loads, default={}, help="JSON: the peer's hyper-parameters to change")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--crop-width", type=int, help="simulated windows' readout columns (preset's by default)")
    parser.add_argument("--val-samples", type=int, help="validation windows (preset's by default)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes drawing windows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--export", type=Path, help="weights file (default RUN_DIR/PEER.pt)")
    args = parser.parse_args(argv)
    if args.steps is None and args.max_minutes is None:
        parser.error("give the budget: --steps N and/or --max-minutes M")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {"seed": args.seed, "crop_width": args.crop_width, "val_samples": args.val_samples}
    config = dataclasses.replace(PRESETS[args.preset], **{k: v for k, v in overrides.items() if v is not None})
    if config.source == "files" and not args.data:
        print(f"--data is required: preset {args.preset} reads a CMRxRecon-format training tree", file=sys.stderr)
        return 2
    command = " ".join(["python -m peers.train", *(sys.argv[1:] if argv is None else argv)])
    record = train_peer(args.peer, config, args.run_dir or RUNS / args.peer, data=args.data, steps=args.steps,
                        max_minutes=args.max_minutes, hparams=args.hparams, workers=args.workers,
                        device=args.device, export=args.export, command=command)
    print(json.dumps({k: record[k] for k in ("steps", "epochs", "selected", "wall_time_minutes", "sha256")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
