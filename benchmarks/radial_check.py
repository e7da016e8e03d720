"""The real 12-channel radial cardiac acquisition as a no-reference check: does a reconstruction predict the
scanner's own measurements, including spokes it never saw?

    python -m benchmarks.radial_check --weights A.pt [B.pt ...] [--labels ...] [--out docs/native-eval.md]

The acquisition (../shared/data/real/gpunufft_radial_cardiac_12ch: 25 spokes x 256 samples x 12 coils, one
real-time frame, about 10x below Nyquist) has no fully sampled reference. Every fifth spoke is held back; the
other 20 are moved to their nearest cells of a 256 x 256 Cartesian grid (simulation.radial.nearest_cartesian),
which gives a static file with a 2-D, ktRadial-like mask (what CMRxRecon's ktRadial masks are to spokes),
reconstructed by zero-filling, CG-SENSE (maps from the central 16 x 16 block, the 2024 ACS rule for 2-D masks)
and each GENRE weights file (predict.py's window, scale and view sharing; one pass). From each method's coil
images S x the table reports relative residuals ||F S x - y|| / ||y|| (lower is better; predicting zero scores 1):
- on the cells the 20 used spokes filled (data consistency: zero-filled is 0 by construction; a model-based
  method stays near its data only as far as a SENSE image can explain neighbouring spokes' samples, which the
  nearest-cell move makes slightly inconsistent);
- on the cells only the held-back spokes fill (prediction of measured data that no method saw, the closest
  thing to a reference), all of them and those outside the central 16 x 16 block;
- at the held-back samples' exact positions (simulation.radial.RadialOperator), where the half-cell move that
  every method was given costs all of them alike.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch

from benchmarks.bench_predict import figure_link, replace_section
from model.acs import acs_region
from model.checkpoint import file_sha256
from model.classical import CGSense, estimate_sensitivities_from_acs
from model.coils import rss
from model.fftc import fft2c, ifft2c
from model.inference import GenreReconstructor
from model.normalisation import kspace_scale
from model.provenance import format_machine, machine_summary
from simulation.anatomy import real_data_root
from simulation.measured_coils import RADIAL_FILE
from simulation.radial import RadialOperator, nearest_cartesian

BEGIN, END = "<!-- radial_check:begin -->", "<!-- radial_check:end -->"
GRID = 256                 # the acquisition's own image size (2x oversampled field of view)
NUM_ACS = 16               # 2024: a 16 x 16 central block for 2-D masks
HOLDOUT_EVERY = 5          # spokes 0, 5, 10, 15, 20 held back


@dataclass
class RadialData:
    samples: torch.Tensor   # (C, S) complex64, S = spokes x samples per spoke
    ky: torch.Tensor        # (S,) cycles per pixel
    kx: torch.Tensor
    held: torch.Tensor      # (S,) bool: the held-back spokes' samples
    spokes: int


@dataclass
class Residual:
    method: str
    used_cells: float
    held_cells: float
    held_cells_outer: float
    held_exact: float


def load_radial(root: Path) -> RadialData:
    """The acquisition as samples (C, S); raises FileNotFoundError where it is absent."""
    path = root / RADIAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the real radial acquisition is not there")
    content = scipy.io.loadmat(path)
    raw, trajectory = content["rawdata"], content["k"]                    # (samples, spokes, C), (samples, spokes)
    spokes = np.broadcast_to(np.arange(raw.shape[1])[None], trajectory.shape)
    return RadialData(samples=torch.from_numpy(raw.reshape(-1, raw.shape[2]).T.astype(np.complex64)),
                      ky=torch.from_numpy(trajectory.imag.ravel()), kx=torch.from_numpy(trajectory.real.ravel()),
                      held=torch.from_numpy((spokes % HOLDOUT_EVERY == 0).ravel()), spokes=raw.shape[1])


def zero_filled_coils(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(C, n, n) Cartesian k-space and its mask -> coil images (C, n, n)."""
    return ifft2c(kspace * mask)


def cg_sense_coils(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """model.classical.CGSense on one frame (maps from the central block, its scale normalisation), returning
    the coil images S x instead of |x|."""
    scale = kspace.abs().max().clamp_min(1e-30)
    frame_mask = mask[None, None]                                                  # (1, 1, n, n)
    sens = estimate_sensitivities_from_acs(kspace[None] / scale, frame_mask, NUM_ACS, True)
    return sens * CGSense().solve(kspace[None] / scale, frame_mask, sens)[0] * scale


@torch.inference_mode()
def genre_coils(reconstructor: GenreReconstructor, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The generator on a static window (every frame the same, as predict.py builds it for a file without a
    time axis), scaled as predict.py scales it -> coil images S x (C, n, n) of the centre frame."""
    generator = reconstructor.generator
    frames = generator.config.adjacent_frames
    masked = (kspace * mask)[None, None].expand(1, frames, *kspace.shape)           # (1, F, C, n, n)
    window_mask = mask[None, None, None].expand(1, frames, 1, *mask.shape).float()
    scale = kspace_scale(masked)
    shared = (kspace * mask)[None] / scale if generator.config.view_sharing else None
    output = generator(masked / scale, window_mask, NUM_ACS, True, shared)
    centre = frames // 2
    return (output.sens[0, centre] * output.complex_image[0, centre]) * scale


def relative_residual(predicted: torch.Tensor, measured: torch.Tensor) -> float:
    """||predicted - measured|| / ||measured|| over every element given."""
    return float((predicted - measured).abs().pow(2).sum().sqrt() / measured.abs().pow(2).sum().sqrt())


def check(data: RadialData, reconstructors: dict[str, GenreReconstructor]
          ) -> tuple[list[Residual], dict[str, np.ndarray]]:
    """Residuals of every method, and the RSS images (n, n) for the figure."""
    kept = ~data.held
    kspace, used = nearest_cartesian(data.samples[:, kept], data.ky[kept], data.kx[kept], GRID)
    held_kspace, held = nearest_cartesian(data.samples[:, data.held], data.ky[data.held], data.kx[data.held], GRID)
    new = held & ~used
    outer = new & ~acs_region(GRID, GRID, NUM_ACS, True)
    held_op = RadialOperator(data.ky[data.held], data.kx[data.held], GRID)
    mask = used.to(torch.float32)
    coils = {"zero-filled": zero_filled_coils(kspace, mask), "CG-SENSE": cg_sense_coils(kspace, mask)}
    for label, reconstructor in reconstructors.items():
        coils[label] = genre_coils(reconstructor, kspace, mask)
    rows = []
    for method, image in coils.items():
        predicted = fft2c(image.to(torch.complex64))
        rows.append(Residual(method, relative_residual(predicted[:, used], kspace[:, used]),
                             relative_residual(predicted[:, new], held_kspace[:, new]),
                             relative_residual(predicted[:, outer], held_kspace[:, outer]),
                             relative_residual(held_op.forward(image.to(torch.complex64)),
                                               data.samples[:, data.held])))
    return rows, {method: rss(c).numpy() for method, c in coils.items()}


def format_section(rows: list[Residual], command: str, machine: dict, weights: dict[str, str], spokes: int,
                   held: int, figure: str | None) -> str:
    """The page's section; ``figure``: the image's link from the page (None: no figure)."""
    lines = [BEGIN, "## Real radial k-space, no reference (benchmarks/radial_check.py)", "",
             f"`{command}` on {datetime.date.today().isoformat()}; {format_machine(machine)}.",
             "; ".join(f"{k} = `{v}`" for k, v in weights.items()) + ".",
             f"The real 12-channel radial cardiac frame: {spokes - held} of {spokes} spokes moved to their nearest "
             f"cells of a {GRID} x {GRID} grid (a static file with a 2-D mask, ACS {NUM_ACS} x {NUM_ACS}), "
             f"{held} spokes held back. Relative residual ||F S x - y|| / ||y|| (lower is better; predicting zero "
             "scores 1): on the used cells (consistency), on the cells only held-back spokes fill (prediction), "
             f"those outside the central {NUM_ACS} x {NUM_ACS} block, and at the held-back samples' exact positions:",
             "", "| method | used cells | held-back cells | held-back cells, outer | held-back spokes, exact |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.method} | {r.used_cells:.4f} | {r.held_cells:.4f} | {r.held_cells_outer:.4f} | "
              f"{r.held_exact:.4f} |" for r in rows]
    lines += ["", f"![real-radial-12ch]({figure})"] if figure else []
    lines += [END]
    return "\n".join(lines) + "\n"


def save_figure(path: Path, images: dict[str, np.ndarray]) -> None:
    """The RSS images side by side (the central half of the 2x oversampled field of view), each scaled to its
    own 99.5th percentile: there is no reference to scale to."""
    from PIL import Image, ImageDraw

    quarter = GRID // 4
    panels = [image[quarter:-quarter, quarter:-quarter] for image in images.values()]
    panels = np.concatenate([np.clip(p / (float(np.quantile(p, 0.995)) or 1.0), 0, 1) for p in panels], 1)
    picture = Image.fromarray((255 * panels).astype(np.uint8)).convert("RGB")
    canvas = Image.new("RGB", (picture.width, picture.height + 14), "black")
    canvas.paste(picture, (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), "real radial, 20 of 25 spokes: " + " / ".join(images), fill="yellow")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.radial_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="+", required=True)
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("docs/native-eval.md"))
    parser.add_argument("--figures", type=Path,
                        help="write the figure here (make eval: docs/figures); none without it")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    labels = args.labels or [f"GENRE {w.stem}" for w in args.weights]
    if len(labels) != len(args.weights):
        print("error: one label per weights file", file=sys.stderr)
        return 2
    root = real_data_root()
    try:
        if root is None:
            raise FileNotFoundError("../shared/data/real is absent")
        data = load_radial(root)
    except FileNotFoundError as error:
        print(f"note: {error}; set GENRE_REAL_DATA to the folder holding it. Radial check skipped.", file=sys.stderr)
        return 0
    torch.manual_seed(0)
    reconstructors = {label: GenreReconstructor(w) for label, w in zip(labels, args.weights)}
    rows, images = check(data, reconstructors)
    for row in rows:
        print(f"{row.method}: used cells {row.used_cells:.4f}, held-back cells {row.held_cells:.4f} "
              f"(outer {row.held_cells_outer:.4f}), held-back exact {row.held_exact:.4f}")
    figure = args.figures / "real-radial-12ch.png" if args.figures else None
    if figure:
        save_figure(figure, images)
    command = shlex.join(["python", "-m", "benchmarks.radial_check", *(sys.argv[1:] if argv is None else argv)])
    weights = {label: f"{w} (sha256 {file_sha256(w)[:12]})" for label, w in zip(labels, args.weights)}
    text = args.out.read_text() if args.out.exists() else "# Native-size evaluation\n"
    section = format_section(rows, command, machine_summary(), weights, data.spokes, -(-data.spokes // HOLDOUT_EVERY),
                             figure=figure_link(figure, args.out) if figure else None)
    args.out.write_text(replace_section(text, section, BEGIN, END))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
