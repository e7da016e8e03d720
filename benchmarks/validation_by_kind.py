"""SSIM / PSNR of several weights files on the simulated source's validation windows, per input kind (single pass by
default).

    python -m benchmarks.validation_by_kind --weights A.pt [B.pt ...] [--windows 24] [--hard-dc] [--trajectories]
                                            [--ensemble 1 2 4] [--acquisition NAME=VALUE ...] [--whole-images]
                                            [--out docs/validation-by-kind.md]

The first column is the zero-filled reconstruction of the same windows (the RSS of the centre frame's masked k-space,
at the reference's scale), so each weights file's margin over it reads off the table.

The simulated-source presets validate on 16 windows pooled over every input kind; this splits validation by kind
(k-t, time-constant Uniform, static, mapping-like) so that a stage that shifts its draws towards one kind can be
judged on that kind, on the validation subjects (preset ``cpu``'s split, seed 0), never on the held-out cases of
benchmarks.native_eval. Every weights file sees the same windows (fixed seed); metrics as in training validation
(the window's centre frame against its noisy reference, the volume's maximum as data range). ``--hard-dc`` adds a
column per weights file: the same forward passes with the measured k-space put back (predict.py --hard-dc);
``--ensemble 1 2 4`` scores predict.py's reflection ensembles side by side from shared passes. ``--trajectories``
adds a row per k-t trajectory (windows of their own, outside the mean over kinds), so that a stage that shifts its k-t
draws between trajectories shows the trade on the validation subjects. ``--acquisition`` simulates the windows with
other ``simulation.realistic.Acquisition`` fields (e.g. ``tissue_phase=1``), for a stage that changes the training
draws' simulation (training --train-acquisition).
"""
import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.validation_windows import report_lines, trained_on_every_subject, weights_note
from model.checkpoint import load_generator
from model.coils import rss
from model.fftc import ifft2c
from model.generator import hard_consistent_centre
from model.inference import reflection_pass
from model.reflection import ENSEMBLES, reflect
from training.config import PRESETS, TrainConfig
from training.simulated import KINDS, KT_PATTERNS, SimulatedSampler, SourceSeries, domain_names
from training.trainer import simulated_samplers, window_scores

SEED = 23


def kind_windows(count: int, config: TrainConfig = PRESETS["cpu"], trajectories: bool = False,
                 keep_maps: bool = False, series: list[SourceSeries] | None = None) -> dict[str, list]:
    """``count`` validation windows per input kind (final-curriculum accelerations), seeded per kind; with
    ``trajectories`` also per k-t trajectory (keys ``kt:ktUniform`` ...), seeded after the kinds, so the kinds'
    windows are the same either way. ``keep_maps``: each window carries its simulated coil maps. ``series``: draw
    from these source series instead of the validation subjects' (benchmarks.anatomy_gap), the same seeds."""
    if series is None:
        domains, _, val, _ = simulated_samplers(config)
        series = val.series
    else:
        domains = domain_names(series)
    draws = [(kind, {kind: 1.0}, None) for kind in KINDS]
    if trajectories:
        draws += [(f"kt:{pattern}", {"kt": 1.0}, {pattern: 1.0}) for pattern in KT_PATTERNS]
    windows = {}
    for index, (name, kinds, kt_weights) in enumerate(draws):
        sampler = SimulatedSampler(series, domains, config.acquisition, kinds, config.acs_choices,
                                   config.crop_width, config.adjacent_frames, reflect_augment=False,
                                   kt_weights=kt_weights, keep_maps=keep_maps)
        rng = np.random.default_rng(SEED + index)
        windows[name] = [sampler.draw(rng, config.curriculum[-1][1]) for _ in range(count)]
    return windows


def window_size_note(config: TrainConfig = PRESETS["cpu"]) -> str:
    """What the windows are in size: the training validation's readout crops, not whole images."""
    if config.crop_width:
        return (f"each a {config.crop_width}-column readout crop at the acquired pixel size (the training "
                "validation's windows, not whole images)")
    return "whole images at the acquired pixel size"


def zero_filled_centre(sample) -> torch.Tensor:
    """A window's masked k-space (1, F, C, H, W) -> the RSS of its centre frame's zero-filled coil images (1, H, W),
    on the scale of the window's target."""
    return rss(ifft2c(sample.masked_kspace[:, sample.masked_kspace.shape[1] // 2]))


@torch.inference_mode()
def score(generator, samples, hard_dc: bool = False, ensembles: tuple[int, ...] = (1,)) -> list[tuple[float, float]]:
    """(mean SSIM, mean PSNR) of ``generator`` over ``samples``, one pair per variant: each reflection ensemble of
    ``ensembles`` (as predict.py --ensemble averages it) and, with ``hard_dc``, after it the same passes with the
    measured k-space put back. The passes are shared: ENSEMBLES' reflection sets are prefixes of one another."""
    passes = ENSEMBLES[max(ensembles, key=lambda e: len(ENSEMBLES[e]))]
    scores = []
    for sample in samples:
        frames = {False: [], True: []}
        for dims in passes:
            output, kspace, mask = reflection_pass(generator, sample.masked_kspace, sample.mask, sample.num_acs,
                                                   sample.radial, sample.shared_kspace, dims)
            frames[False].append(reflect(output.image.float(), dims))
            if hard_dc:
                frames[True].append(reflect(hard_consistent_centre(output, kspace, mask).float(), dims))
        images = [torch.stack(frames[dc][:len(ENSEMBLES[e])]).mean(dim=0)
                  for e in ensembles for dc in (False, True)[:1 + hard_dc]]
        scores.append([window_scores(image, sample) for image in images])
    return [(float(ssim), float(psnr)) for ssim, psnr in np.mean(np.array(scores), axis=0)]   # per variant


def kind_cells(generators: list, samples, hard_dc: bool = False, ensembles: tuple[int, ...] = (1,)
               ) -> list[tuple[float, float]]:
    """(mean SSIM, mean PSNR) over ``samples``: zero-filled first, then each generator's variants (``score``)."""
    zero_filled = np.mean([window_scores(zero_filled_centre(sample), sample) for sample in samples], axis=0)
    return [tuple(zero_filled)] + [cell for generator in generators
                                   for cell in score(generator, samples, hard_dc, ensembles)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation_by_kind",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="+", required=True)
    parser.add_argument("--windows", type=int, default=24, help="windows per input kind")
    parser.add_argument("--hard-dc", action="store_true",
                        help="also score each weights file with the measured k-space put back")
    parser.add_argument("--trajectories", action="store_true",
                        help="also a row per k-t trajectory (its own windows; not in the mean over kinds)")
    parser.add_argument("--ensemble", type=int, nargs="+", default=[1], choices=sorted(ENSEMBLES),
                        help="reflection ensembles to score, each a column per weights file (default: single pass)")
    parser.add_argument("--acquisition", nargs="+", metavar="NAME=VALUE", default=[],
                        help="simulate the windows with these Acquisition fields changed (default: the preset's)")
    parser.add_argument("--whole-images", action="store_true",
                        help="windows of whole images instead of the training validation's readout crops")
    parser.add_argument("--out", type=Path, default=Path("docs/validation-by-kind.md"))
    args = parser.parse_args(argv)
    config = dataclasses.replace(PRESETS["cpu"], crop_width=0) if args.whole_images else PRESETS["cpu"]
    try:
        config = dataclasses.replace(config, acquisition=config.acquisition.overridden(args.acquisition))
    except ValueError as error:
        parser.error(f"--acquisition: {error}")
    command = shlex.join(["python", "-m", "benchmarks.validation_by_kind", *(sys.argv[1:] if argv is None else argv)])
    loaded = [load_generator(path) for path in args.weights]
    suffixes = [(f", ensemble {e}" if args.ensemble != [1] else "") + dc
                for e in args.ensemble for dc in ([""] + [" + hard DC"] * args.hard_dc)]
    columns = ["zero-filled"] + [f"`{p}`{suffix}" for p in args.weights for suffix in suffixes]
    rows = ["| kind | n | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    per_kind, trajectory_rows = [], []
    for kind, samples in kind_windows(args.windows, config, trajectories=args.trajectories).items():
        cells = kind_cells([generator for generator, _ in loaded], samples, args.hard_dc, tuple(args.ensemble))
        row = f"| {kind} | {len(samples)} | " + " | ".join(f"{p:.2f} / {s:.3f}" for s, p in cells) + " |"
        if kind in KINDS:
            per_kind.append(cells)
            rows.append(row)
        else:
            trajectory_rows.append(row)
        print(row, flush=True)
    means = np.mean(np.array(per_kind), axis=0)             # (columns, 2): SSIM, PSNR over the kinds
    rows.append("| mean over kinds | | " + " | ".join(f"{p:.3f} / {s:.4f}" for s, p in means) + " |")
    rows += trajectory_rows
    notes = [weights_note(path, "; its last stage trained on every subject, so these windows were seen in training"
                          if trained_on_every_subject(record) else "")
             for path, (_, record) in zip(args.weights, loaded)]
    lines = report_lines("Validation per input kind (benchmarks/validation_by_kind.py)", command, notes,
                         f"preset `cpu`'s validation subjects, simulated afresh (seed {SEED} + kind"
                         f"{'; acquisition ' + ' '.join(args.acquisition) if args.acquisition else ''}), "
                         f"{window_size_note(config)}, "
                         f"{'single pass' if args.ensemble == [1] else 'reflection ensembles ' + str(args.ensemble)}; "
                         "PSNR dB / SSIM, mean over the windows", rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
