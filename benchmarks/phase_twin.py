"""How much of GENRE's gain the real 1-coil SAX frame's phase costs: the frame against twins that differ in phase only.

    python -m benchmarks.phase_twin [--weights weights/genre_cmr.pt] [--out docs/phase-twin.md]

The frame (../shared/data/real/cmrx24_demo_sax_1coil) is reconstructed as benchmarks.native_eval reconstructs it
(predict.py's path, one pass) with five of its masks (Uniform 4/8/16, ktGaussian 8, ktRadial 8), and so is each twin:
its magnitude with zero phase, with its own phase smoothed, with only the sign of its real part (phase 0 or pi), and
with the simulator's phase (``simulation.realistic.structured_phase``) without and with ``tissue_phase``, three draws
each. The table gives GENRE's PSNR gain over zero-filled (2024 metric), per mask and their mean.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from benchmarks.bench_predict import write_section
from benchmarks.native_eval import evaluate, real_cases
from model.checkpoint import file_sha256
from model.fftc import fft2c, ifft2c
from model.inference import GenreReconstructor
from model.provenance import format_machine, machine_summary
from simulation.anatomy import real_data_root
from simulation.realistic import Acquisition, structured_phase

BEGIN, END = "<!-- phase_twin:begin -->", "<!-- phase_twin:end -->"
MASKS = {("Uniform", 4), ("Uniform", 8), ("Uniform", 16), ("ktGaussian", 8), ("ktRadial", 8)}


def twins(kspace: np.ndarray, draws: int = 3) -> dict[str, np.ndarray]:
    """kspace (ny, nx) of one fully sampled coil image -> {name: (ny, nx) complex64 k-space}: the frame itself and
    twins with its magnitude and another phase."""
    image = ifft2c(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))).numpy()
    magnitude = np.abs(image)

    def of(phase: np.ndarray | float) -> np.ndarray:
        return fft2c(torch.from_numpy((magnitude * np.exp(1j * phase)).astype(np.complex64))).numpy()

    smoothed = np.angle(gaussian_filter(image.real, 4.0) + 1j * gaussian_filter(image.imag, 4.0))
    found = {"as measured": kspace.astype(np.complex64), "its magnitude, zero phase": of(0.0),
             "its magnitude, its phase smoothed (Gaussian, 4 px)": of(smoothed),
             "its magnitude, phase 0 or pi (the sign of its real part)": of(np.pi * (image.real < 0))}
    for tied in (0.0, 1.0):
        for seed in range(draws):
            phase = structured_phase(magnitude[None].astype(np.float32), Acquisition(tissue_phase=tied),
                                     np.random.default_rng(seed))[0]
            kind = "the simulator's phase" + (" with tissue_phase" if tied else "")
            found[f"its magnitude, {kind} (draw {seed})"] = of(phase)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phase_twin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=Path("weights/genre_cmr.pt"))
    parser.add_argument("--out", type=Path, default=Path("docs/phase-twin.md"))
    args = parser.parse_args(argv)
    cases = [c for c in real_cases(real_data_root()) if c.name == "cmrx24_demo_sax_1coil"
             and (c.pattern, c.acceleration) in MASKS]
    if not cases:
        print("skip: the real 1-coil SAX frame is absent (../shared/data/real or $GENRE_REAL_DATA)", file=sys.stderr)
        return 0
    reconstructor = {"GENRE": GenreReconstructor(args.weights, ensemble=1)}
    labels = [f"{p} {a}" for p, a in sorted(MASKS)]
    rows = ["| the frame's k-space | " + " | ".join(labels) + " | mean |", "|---|" + "---|" * (len(labels) + 1)]
    for name, kspace in twins(cases[0].kspace[0, 0]).items():
        scored = evaluate([dataclasses.replace(c, kspace=kspace[None, None], name=name) for c in cases],
                          reconstructor, baselines=True)
        psnr = {(r.pattern, r.acceleration, r.method): r.psnr for r in scored}
        gains = [psnr[(p, a, "GENRE")] - psnr[(p, a, "zero-filled")] for p, a in sorted(MASKS)]
        rows.append(f"| {name} | " + " | ".join(f"{g:+.2f}" for g in gains) + f" | {np.mean(gains):+.2f} |")
        print(rows[-1], flush=True)
    command = shlex.join(["python", "-m", "benchmarks.phase_twin", *(sys.argv[1:] if argv is None else argv)])
    section = "\n".join([BEGIN, "## GENRE's gain over zero-filled on the real SAX frame and its phase twins", "",
                         f"`{command}` on {datetime.date.today()}; {format_machine(machine_summary())}; weights "
                         f"`{args.weights}` (sha256 {file_sha256(args.weights)[:12]}), one pass. PSNR gain in dB.", "",
                         *rows, "", END])
    write_section(args.out, section, BEGIN, END, title="# The real frame's phase against the simulator's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
