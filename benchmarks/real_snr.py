"""The SNR of the real fully sampled acquisitions, measured as simulation.realistic defines it, so that the simulated
range (``Acquisition.snr``) can be set against real data.

    python -m benchmarks.real_snr [--out docs/real-snr.md]

For each coil: the noise is the complex std in the four corners of the centred k-space (5% of each axis), where
the object has no energy left; the image-domain std at the edges of the oversampled readout is not used, because the
receiver's readout filter makes it several times lower there than under the object. The signal is the mean magnitude
of the coil image over the pixels above a tenth of its maximum (``draw_acquisition``'s object level), measured on the
image smoothed (a 2-pixel Gaussian on its real and imaginary parts) so that the noise does not raise it. The simulator's
SNR divides that object level by the per-coil noise std with coil maps of unit root-sum-of-squares, which is about
the SNR of the optimally coil-combined image; the table gives each coil's and their root-sum-of-squares (that
combination's SNR where the coils see the object alike, noise uncorrelated), beside the simulated range.

The noise ceiling: the 2024 score a perfect, noise-free reconstruction would get against the acquisition's own noisy
reference (``noise_ceiling``), the real-data counterpart of benchmarks.native_eval's "noise-free truth" column. A
method's score on that acquisition is not expected above it. Fresh noise is drawn white at the corners' level, so
the readout filter's shaping of the real noise is not reproduced.
"""
from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from benchmarks.bench_predict import write_section
from benchmarks.native_eval import REAL_SAX, TWIX, sax_kspace, scored, twix_kspace
from model.coils import rss
from model.fftc import ifft2c
from model.provenance import format_machine, machine_summary
from simulation.anatomy import real_data_root
from simulation.realistic import Acquisition

BEGIN, END = "<!-- real_snr:begin -->", "<!-- real_snr:end -->"
SMOOTH = 2.0          # px: the Gaussian the object level is measured on


def corner_noise_std(kspace: np.ndarray, corner: float = 0.05) -> np.ndarray:
    """kspace (nc, ny, nx) complex -> (nc,) complex noise std in the four corners (``corner`` of each axis) of the
    centred k-space, where the object has no energy left: the receiver's readout filter shapes the image-domain noise
    along the oversampled readout (at its edges the std is several times lower than under the object), and the
    k-space std is that profile's mean level."""
    stds = []
    for coil in kspace:
        ny, nx = coil.shape
        ay, ax = max(2, int(ny * corner)), max(2, int(nx * corner))
        corners = np.concatenate([block.ravel() for block in (coil[:ay, :ax], coil[:ay, -ax:], coil[-ay:, :ax],
                                                              coil[-ay:, -ax:])])
        stds.append(np.sqrt(corners.real.var() + corners.imag.var()))
    return np.array(stds)


def coil_snr(kspace: np.ndarray, corner: float = 0.05) -> np.ndarray:
    """kspace (nc, ny, nx) complex -> (nc,) object level over the noise std of the centred orthonormal FFT
    (``corner_noise_std``)."""
    images = ifft2c(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))).numpy()
    snr = []
    for image, noise in zip(images, corner_noise_std(kspace, corner)):
        # the object level on the image smoothed as complex values: the noise averages out instead of raising
        # the magnitude of every background pixel towards the threshold (at an SNR of 8 it would be a third low)
        magnitude = np.abs(gaussian_filter(image.real, SMOOTH) + 1j * gaussian_filter(image.imag, SMOOTH))
        snr.append(float(magnitude[magnitude > 0.1 * magnitude.max()].mean() / noise))
    return np.array(snr)


def noise_ceiling(kspace: np.ndarray, draws: int = 4, seed: int = 0) -> tuple[float, float]:
    """kspace (nc, ny, nx) complex, fully sampled -> (PSNR dB, SSIM) that a perfect, noise-free reconstruction would
    score against this acquisition's noisy root-sum-of-squares reference (the 2024 metric). Estimated on a stand-in:
    the coil images smoothed (a Gaussian of ``SMOOTH`` / 2 px on real and imaginary parts) play the noise-free truth,
    each draw adds fresh noise at the measured level (``corner_noise_std`` per coil) to make its reference, and the
    truth's root-sum-of-squares is scored against it; mean of ``draws`` draws. (Scoring the reference against itself
    plus fresh noise reads about a dB low where background fills the field of view: both sides are then noisy.)"""
    kspace = np.ascontiguousarray(kspace, dtype=np.complex64)
    images = ifft2c(torch.from_numpy(kspace)).numpy()
    truth = np.stack([gaussian_filter(i.real, SMOOTH / 2) + 1j * gaussian_filter(i.imag, SMOOTH / 2) for i in images])
    truth_rss = rss(torch.from_numpy(truth), dim=0).numpy()
    std = corner_noise_std(kspace)[:, None, None] / np.sqrt(2)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(draws):
        noisy = truth + std * (rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape))
        scores.append(scored(rss(torch.from_numpy(noisy), dim=0).numpy(), truth_rss))
    psnr, ssim = np.mean(scores, axis=0)
    return float(psnr), float(ssim)


def real_acquisitions(root: Path | None) -> list[tuple[str, np.ndarray]]:
    """(name, fully sampled k-space (nc, ny, nx)) of the real Cartesian acquisitions present under ``root``."""
    found = []
    if root is not None and (root / REAL_SAX / "cine_sax.mat").is_file():
        found.append(("CMRxRecon 2024 cine SAX, coil 1 of its file (bSSFP cine)", sax_kspace(root / REAL_SAX)[None]))
    if root is not None and (root / TWIX).is_file():
        kspace = twix_kspace(root / TWIX)
        if kspace is not None:
            found.append(("Siemens TWIX GRE resolution phantom, 2 coils", kspace))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_snr", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/real-snr.md"))
    args = parser.parse_args(argv)
    acquisitions = real_acquisitions(real_data_root())
    if not acquisitions:
        print("skip: no real fully sampled acquisition under ../shared/data/real (or $GENRE_REAL_DATA)",
              file=sys.stderr)
        return 0
    low, high = Acquisition().snr
    rows = ["| acquisition | coils | SNR per coil | root-sum-of-squares | simulated (log-uniform) | "
            "noise ceiling (2024 metric, PSNR dB / SSIM) |",
            "|---|---|---|---|---|---|"]
    for name, kspace in acquisitions:
        snr = coil_snr(kspace)
        psnr, ssim = noise_ceiling(kspace)
        rows.append(f"| {name} | {len(snr)} | {', '.join(f'{s:.1f}' for s in snr)} | "
                    f"{np.sqrt((snr ** 2).sum()):.1f} | {low:g}-{high:g} | {psnr:.2f} / {ssim:.3f} |")
        print(rows[-1])
    command = shlex.join(["python", "-m", "benchmarks.real_snr", *(sys.argv[1:] if argv is None else argv)])
    section = "\n".join([BEGIN, "## SNR of the real acquisitions (benchmarks/real_snr.py)", "",
                         f"`{command}` on {datetime.date.today()}; {format_machine(machine_summary())}.", "",
                         *rows, "", END])
    write_section(args.out, section, BEGIN, END, title="# Real data against the simulated SNR range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
