"""Simulated receive-coil sensitivities, (nc, ny, nx) complex64, not normalised (as real coils are)."""
import numpy as np
from scipy.ndimage import gaussian_filter


def surface_coil_sensitivities(nc: int, ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
    """Coils spaced around the chest (an ellipse around the object, which fills the central half of the
    readout), each a smooth Gaussian-like fall-off with a smooth phase ramp."""
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    start = rng.uniform(0, 2 * np.pi)
    maps = []
    for c in range(nc):
        angle = start + 2 * np.pi * c / nc + rng.normal(0, 0.15)
        cy, cx = 1.1 * np.cos(angle), 0.6 * np.sin(angle)
        width = rng.uniform(0.5, 0.9)
        magnitude = np.exp(-((y - cy) ** 2 + ((x - cx) / 0.6) ** 2) / (2 * width ** 2))
        phase = rng.uniform(-np.pi, np.pi) + rng.normal(0, 1.0) * y + rng.normal(0, 1.0) * x
        maps.append(magnitude * np.exp(1j * phase))
    return np.stack(maps).astype(np.complex64)


def random_smooth_sensitivities(nc: int, ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
    """Low-pass filtered complex noise fields: no geometric prior at all."""
    sigma = (ny / 6, nx / 6)
    fields = [gaussian_filter(rng.standard_normal((ny, nx)), sigma, mode="wrap")
              + 1j * gaussian_filter(rng.standard_normal((ny, nx)), sigma, mode="wrap") for _ in range(nc)]
    maps = np.stack(fields)
    return (maps / np.abs(maps).max()).astype(np.complex64)


def simulate_sensitivities(nc: int, ny: int, nx: int, rng: np.random.Generator, kind: str = "surface") -> np.ndarray:
    if kind == "surface":
        return surface_coil_sensitivities(nc, ny, nx, rng)
    if kind == "random":
        return random_smooth_sensitivities(nc, ny, nx, rng)
    raise ValueError(f"unknown coil kind {kind!r}: 'surface' or 'random'")
