"""Do the learned coil maps limit GENRE? Its learned maps against the simulator's true ones, per input kind.

    python -m benchmarks.oracle_maps [--weights weights/genre_cmr.pt] [--windows 12] [--out docs/oracle-maps.md]

On benchmarks.validation_by_kind's windows (the validation subjects, never the held-out cases), each window is
reconstructed twice, single pass: with the maps the generator estimates from the ACS lines, and with the maps the
simulator drew, in place of the sensitivity network's output. The true maps are normalised to unit RSS per pixel, as
the learned ones are, and take the learned maps' common phase per pixel: SENSE cannot see a phase shared by every coil,
the learned maps carry the image's low-resolution phase, and the denoiser has learned to expect the phase-free image
that leaves. The true maps then differ from the learned ones only in what the data can tell apart.
"""
import argparse
import contextlib
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.validation_by_kind import kind_windows, window_size_note, zero_filled_centre
from benchmarks.validation_windows import report_lines, trained_on_every_subject, weights_note
from model.checkpoint import load_generator
from model.coils import normalise_to_unit_rss
from training.trainer import window_scores

METHODS = ("zero-filled", "learned maps", "true maps")


def aligned_maps(true_maps: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """true_maps (1, C, H, W), learned (1, F, C, H, W) complex -> (1, F, C, H, W): the true maps at unit RSS per pixel,
    turned per pixel and frame to the learned maps' common phase (the phase of sum_c conj(true_c) learned_c)."""
    true_maps = normalise_to_unit_rss(true_maps.to(torch.complex64))[:, None]
    common = (true_maps.conj() * learned).sum(dim=2, keepdim=True)
    return true_maps * torch.exp(1j * torch.angle(common))


class FixedMaps(nn.Module):
    """A sensitivity network's stand-in that returns given maps (1, F, C, H, W) whatever it is shown."""

    def __init__(self, maps: torch.Tensor):
        super().__init__()
        self.maps = maps

    def forward(self, masked_kspace, mask, num_acs, radial) -> torch.Tensor:
        return self.maps


@contextlib.contextmanager
def sensitivity_replaced(generator, module: nn.Module):
    """``generator`` with ``module`` as its sensitivity network inside the block, its own again after."""
    own = generator.sens_net
    generator.sens_net = module
    try:
        yield generator
    finally:
        generator.sens_net = own


@torch.inference_mode()
def compare(generator, samples) -> dict[str, tuple[float, float]]:
    """Mean (SSIM, PSNR) over ``samples`` (windows that carry ``maps``) for each of METHODS."""
    scores = {method: [] for method in METHODS}
    for sample in samples:
        if sample.maps is None:
            raise ValueError("oracle_maps: the windows must carry their coil maps (kind_windows(keep_maps=True))")
        inputs = (sample.masked_kspace, sample.mask, sample.num_acs, sample.radial, sample.shared_kspace)
        scores["zero-filled"].append(window_scores(zero_filled_centre(sample), sample))
        learned = generator(*inputs)
        scores["learned maps"].append(window_scores(learned.image, sample))
        with sensitivity_replaced(generator, FixedMaps(aligned_maps(sample.maps, learned.sens))):
            scores["true maps"].append(window_scores(generator(*inputs).image, sample))
    return {method: tuple(float(v) for v in np.mean(values, axis=0)) for method, values in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.oracle_maps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=Path("weights/genre_cmr.pt"))
    parser.add_argument("--windows", type=int, default=12, help="windows per input kind")
    parser.add_argument("--out", type=Path, default=Path("docs/oracle-maps.md"))
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.oracle_maps", *(sys.argv[1:] if argv is None else argv)])
    generator, record = load_generator(args.weights)
    seen = "; its last stage trained on every subject, so these windows were seen in training"
    rows = ["| kind | n | " + " | ".join(METHODS) + " | true − learned |", "|---" * (len(METHODS) + 3) + "|"]
    for kind, samples in kind_windows(args.windows, keep_maps=True).items():
        means = compare(generator, samples)
        cells = " | ".join(f"{means[m][1]:.2f} / {means[m][0]:.4f}" for m in METHODS)
        rows.append(f"| {kind} | {len(samples)} | {cells} | "
                    f"{means['true maps'][1] - means['learned maps'][1]:+.2f} dB |")
        print(rows[-1], flush=True)
    lines = report_lines("GENRE with learned against true coil maps (benchmarks/oracle_maps.py)", command,
                         [weights_note(args.weights, seen if trained_on_every_subject(record) else "")],
                         "benchmarks.validation_by_kind's (preset `cpu`'s validation subjects, seed 23 + kind), "
                         f"{window_size_note()}, single pass; PSNR dB / SSIM, mean over the windows", rows)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
