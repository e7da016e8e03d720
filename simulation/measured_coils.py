"""Receive-coil sensitivities measured on a scanner, augmented to any coil count and matrix size.

Source: the real 12-channel radial cardiac acquisition in ../shared/data/real (gpunufft_radial_cardiac_12ch;
25 spokes x 256 samples, 2x oversampled field of view). Its low-resolution coil images come from an adjoint
DFT of the samples inside the grid's band (ramp density compensation, Hann taper); the maps are a local
weighted least-squares fit of coil image over body image (``normalised_maps``), normalised to unit RSS; the
simulator adds its own intensity shading.

Augmentation (``augmented_maps``): rotation, scaling, flips and a shift of the body under the array, then a
random unitary mix of the coils; coil counts above 12 stack independently augmented copies before mixing.
"""
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.io
import torch
from scipy.ndimage import gaussian_filter, map_coordinates

from simulation.anatomy import RealDataMissing, real_data_root

RADIAL_FILE = Path("gpunufft_radial_cardiac_12ch") / "radial_cardiac_25_projections.mat"
GRID = 48                 # low-resolution grid over the radial acquisition's whole (2x oversampled) field of view
ACQUIRED_FOV = 256        # samples per spoke = image size of the original gridding


def lowres_coil_images(raw: np.ndarray, trajectory: np.ndarray, size: int = GRID) -> np.ndarray:
    """raw (samples, spokes, nc) complex, trajectory (samples, spokes) complex in [-0.5, 0.5] -> coil images
    (nc, size, size) complex128 over the acquired field of view (adjoint DFT of the samples in the grid's band)."""
    kx, ky = trajectory.real.ravel(), trajectory.imag.ravel()
    band = size / (2 * ACQUIRED_FOV)
    inside = (np.abs(kx) < band) & (np.abs(ky) < band)
    radius = np.hypot(kx[inside], ky[inside]) / band
    weight = np.abs(trajectory).ravel()[inside] * np.cos(0.5 * np.pi * np.clip(radius, 0, 1)) ** 2
    position = (np.arange(size) - size // 2) * (ACQUIRED_FOV / size)
    ey = np.exp(2j * np.pi * ky[inside, None] * position[None])           # (s, size)
    ex = np.exp(2j * np.pi * kx[inside, None] * position[None])
    data = raw.reshape(-1, raw.shape[-1])[inside] * weight[:, None]      # (s, nc)
    return np.einsum("sy,sx,sc->cyx", ey, ex, data)


def normalised_maps(coil_images: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """(nc, n, n) coil images -> (nc, n, n) complex64 maps with unit RSS.

    A local weighted least-squares fit of I_c = S_c * rho: S_c = G*(I_c conj(rho)) / G*(|rho|^2) with a Gaussian
    G of ``sigma`` pixels, where rho is the RSS with the smooth phase of a virtual body coil (maps relative to it,
    as ESPIRiT's are). Low-signal pixels (lungs, outside the body) weigh little, so the maps stay smooth there and
    extend outside the body instead of dividing noise by noise."""
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(0))
    # a virtual body coil (the coils' first principal component), low-passed, gives rho a smooth phase
    flat = coil_images.reshape(len(coil_images), -1)
    principal = np.linalg.eigh(flat @ flat.conj().T)[1][:, -1]
    virtual = np.tensordot(principal.conj(), coil_images, axes=1)
    virtual = gaussian_filter(virtual.real, sigma) + 1j * gaussian_filter(virtual.imag, sigma)
    rho = rss * np.exp(1j * np.angle(virtual))
    weight = gaussian_filter(rss ** 2, sigma, mode="nearest") + 1e-6 * (rss ** 2).max()
    product = coil_images * np.conj(rho)[None]
    maps = np.stack([(gaussian_filter(p.real, sigma, mode="nearest") + 1j * gaussian_filter(p.imag, sigma, mode="nearest"))
                     / weight for p in product])
    return (maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True)).clip(1e-12)).astype(np.complex64)


@lru_cache(maxsize=2)
def measured_maps(root: Path | None = None) -> np.ndarray:
    """The 12 measured maps (12, GRID, GRID) complex64; RealDataMissing where the acquisition is absent."""
    root = root or real_data_root()
    path = root / RADIAL_FILE if root else None
    if path is None or not path.is_file():
        raise RealDataMissing(f"no {RADIAL_FILE} under {root or 'the shared data folder'}")
    content = scipy.io.loadmat(path)
    return normalised_maps(lowres_coil_images(content["rawdata"], content["k"]))


def random_unitary(n: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random n x n unitary (QR of a complex Gaussian with the phases of R's diagonal removed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    return q * (np.diag(r) / np.abs(np.diag(r)))[None]


def _resampled(maps: np.ndarray, ny: int, nx: int, rng: np.random.Generator, coarse: int = 4) -> np.ndarray:
    """One geometric augmentation of (nc, n, n) maps onto a (ny, nx) grid whose body fills the central half of
    the readout (nx) and most of ny, as CMRxRecon's oversampled readouts have it -> (nc, ny, nx) complex64."""
    n = maps.shape[-1]
    gy, gx = -(-ny // coarse), -(-nx // coarse)
    v, u = np.meshgrid(np.linspace(-1, 1, gy), np.linspace(-2, 2, gx), indexing="ij")   # body: |u| <= 1
    angle, scale = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.25)
    flip = rng.choice([-1.0, 1.0], 2)
    shift = rng.uniform(-0.15, 0.15, 2)
    c, s = np.cos(angle), np.sin(angle)
    a, b = (c * v - s * u) * flip[0] / scale + shift[0], (s * v + c * u) * flip[1] / scale + shift[1]
    rows, cols = n / 2 + a * n / 4, n / 2 + b * n / 4        # the acquired body spans the central half
    coarse_maps = np.stack([map_coordinates(m.real, [rows, cols], order=1, mode="nearest")
                            + 1j * map_coordinates(m.imag, [rows, cols], order=1, mode="nearest") for m in maps])
    full = torch.nn.functional.interpolate(torch.from_numpy(np.stack([coarse_maps.real, coarse_maps.imag], 1)
                                                            .reshape(1, -1, gy, gx)).float(),
                                           size=(ny, nx), mode="bilinear", align_corners=True)
    full = full.reshape(len(maps), 2, ny, nx).numpy()
    return (full[:, 0] + 1j * full[:, 1]).astype(np.complex64)


def augmented_maps(nc: int, ny: int, nx: int, rng: np.random.Generator, base: np.ndarray | None = None
                   ) -> np.ndarray:
    """(nc, ny, nx) complex64 maps from the measured set: geometric augmentation, then unitary coil mixing."""
    base = measured_maps() if base is None else base
    copies = -(-nc // len(base))
    stacked = np.concatenate([_resampled(base, ny, nx, rng) for _ in range(copies)])
    mixing = random_unitary(len(stacked), rng)[:nc]
    return (np.einsum("ij,jyx->iyx", mixing, stacked) / np.sqrt(copies)).astype(np.complex64)
