"""Mapping-like series from one anatomy frame: the contrast, not the anatomy, changes from frame to frame.

The frame's intensity stands in for tissue class: pseudo-T1 and pseudo-T2 maps are smooth monotone functions
of it (bright bSSFP blood has long T1 and T2), perturbed by a slow random field so that no single intensity
maps to one value. T1map-like series are inversion-recovery magnitudes |1 - 2 exp(-TI / T1)| (nulls and sign
flips, as MOLLI weightings have); T2map-like series decay as exp(-TE / T2).
"""
import numpy as np
from scipy.ndimage import gaussian_filter


def _perturbation(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal(shape), (shape[0] / 10, shape[1] / 10), mode="wrap")
    return field / (np.abs(field).max() + 1e-12)


def t1_series(frame: np.ndarray, rng: np.random.Generator, nt: int = 9) -> np.ndarray:
    """(ny, nx) in [0, 1] -> (nt, ny, nx) float32 inversion-recovery weightings, sorted inversion times."""
    t1 = 300 + 1500 * np.clip(frame + 0.15 * _perturbation(frame.shape, rng), 0, 1)          # ms
    inversion_times = np.sort(rng.uniform(100, 3500, nt))
    density = np.sqrt(frame)          # zero where the frame is (no signal appears), flatter than the cine
    series = density[None] * np.abs(1 - 2 * np.exp(-inversion_times[:, None, None] / t1[None]))
    return (series / max(series.max(), 1e-12)).astype(np.float32)


def t2_series(frame: np.ndarray, rng: np.random.Generator, nt: int = 3) -> np.ndarray:
    """(ny, nx) in [0, 1] -> (nt, ny, nx) float32 T2-prepared weightings, echo times from 0 upwards."""
    t2 = 30 + 200 * np.clip(frame + 0.1 * _perturbation(frame.shape, rng), 0, 1) ** 2       # ms
    echo_times = np.concatenate([[0.0], np.sort(rng.uniform(20, 60, nt - 1))])
    series = frame[None] * np.exp(-echo_times[:, None, None] / t2[None])
    return (series / max(series.max(), 1e-12)).astype(np.float32)
