"""From magnitude images to fully sampled multi-coil k-space as the scanner (and the organisers) would see it.

magnitude (nt, nz, ny, nx) -> x smooth phase -> x coil maps -> centred orthonormal FFT (the challenge's
convention) -> + complex Gaussian noise -> x global scale. The reference image is the RSS of the inverse FFT
of that k-space: the noise stays in the reference, as in the organisers' fully sampled references.
"""
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from model.coils import rss
from model.fftc import fft2c, ifft2c
from simulation.coils import simulate_sensitivities


def smooth_phase(ny: int, nx: int, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Background phase in radians: a random linear/quadratic ramp plus a low-frequency random field."""
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    ramp = rng.normal(0, 1, 5) @ np.stack([y, x, y * x, y ** 2, x ** 2]).reshape(5, -1)
    field = gaussian_filter(rng.standard_normal((ny, nx)), (ny / 8, nx / 8), mode="wrap")
    field = field / (np.abs(field).max() + 1e-12)
    return (strength * (ramp.reshape(ny, nx) + np.pi * field)).astype(np.float32)


def simulate_kspace(magnitude: np.ndarray, n_coils: int, rng: np.random.Generator, snr: float = 40.0,
                    coil_kind: str = "surface", scale: float = 1.0, phase_strength: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """magnitude (nt, nz, ny, nx) -> (kspace_full (nt, nz, nc, ny, nx) complex64, reference RSS (nt, nz, ny, nx)).

    snr: mean object intensity of the coil-combined image over the image-domain noise std per coil.
    """
    nt, nz, ny, nx = magnitude.shape
    strength = rng.uniform(0.3, 1.5) if phase_strength is None else phase_strength
    kspace = np.empty((nt, nz, n_coils, ny, nx), np.complex64)
    for z in range(nz):
        sens = simulate_sensitivities(n_coils, ny, nx, rng, coil_kind)
        phase = smooth_phase(ny, nx, rng, strength)
        image = magnitude[:, z] * np.exp(1j * phase)[None]
        coil_images = torch.from_numpy((image[:, None] * sens[None]).astype(np.complex64))
        kspace[:, z] = fft2c(coil_images).numpy()
        object_level = magnitude[:, z][magnitude[:, z] > 0.1 * magnitude[:, z].max()].mean() \
            if magnitude[:, z].max() > 0 else 1.0
        sigma = object_level * float(np.sqrt((np.abs(sens) ** 2).sum(0)).mean()) / snr
        noise = rng.standard_normal((nt, n_coils, ny, nx)) + 1j * rng.standard_normal((nt, n_coils, ny, nx))
        kspace[:, z] += (sigma / np.sqrt(2) * noise).astype(np.complex64)
    kspace *= np.float32(scale)
    reference = rss(ifft2c(torch.from_numpy(kspace))).numpy().astype(np.float32)
    return kspace, reference
