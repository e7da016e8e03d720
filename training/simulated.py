"""Training windows simulated on the fly at native scale, for every kind of input the challenge sends.

Each draw takes a magnitude series at the pixel size it was acquired with (the real cine in ../shared/data/real
at its native size, or a phantom at a native-like size), simulates a fresh scanner-like acquisition of it
(``simulation.realistic``: measured coils, correlated noise, structured phase, shading) and undersamples it
with an official mask. To keep CPU steps affordable a window may be a readout crop: the acquisition of
``crop_width`` columns of the image, which is the hybrid (x, ky) crop of the full acquisition (fully sampled
readout, every phase-encode line, the real ACS count, the body's share of the oversampled field of view).

Input kinds (``KINDS``): k-t masks that change over frames; time-constant Uniform masks (2023 files, 2024 Task 1,
2025 Uniform); static files (no time axis: one frame, the same image and mask in every slot of the window); and
mapping-like series whose contrast changes between frames (``simulation.contrast``), windows not wrapping.
"""
from dataclasses import dataclass

import numpy as np
import torch

from challenge.masks import make_mask
from model.coils import rss
from model.fftc import ifft2c
from model.normalisation import kspace_scale
from model.view_sharing import shared_kspace
from model.window import adjacent_frames
from simulation.anatomy import RealDataMissing, list_cine_series, load_cine_series
from simulation.contrast import t1_series, t2_series
from simulation.geometry import Geometry, rotate_zoom
from simulation.phantom import phantom_series
from simulation.realistic import Acquisition, acquire, draw_acquisition
from training.dataset import Sample

KINDS = ("kt", "uniform", "static", "mapping")
KT_PATTERNS = ("ktUniform", "ktGaussian", "ktRadial")
ALL_PATTERNS = ("Uniform",) + KT_PATTERNS
UNIFORM_EXTRA_FACTORS = (4, 10)          # the 2023 and 2024 Task-1 Uniform factors beside the curriculum's
PHANTOM_SIZES = ((140, 260), (380, 460))  # (ny range, nx range) of native cine matrices with 2x readout OS


@dataclass(frozen=True)
class SourceSeries:
    """A magnitude series (nt, ny, nx) in [0, 1] at native pixel size, and where it came from."""
    images: np.ndarray
    center: str
    subject: str


def real_cine_pool(keep) -> list[SourceSeries]:
    """Every real cine series whose record passes ``keep(record)``, at native size; [] when absent."""
    try:
        records = [r for r in list_cine_series() if keep(r)]
    except RealDataMissing:
        return []
    return [SourceSeries(load_cine_series(r), r.center, f"{r.folder}/{r.view}{r.slice}") for r in records]


def phantom_pool(count: int, rng: np.random.Generator, first: int = 1) -> list[SourceSeries]:
    """``count`` phantom cine series at native-like sizes, odd and even."""
    pool = []
    for i in range(count):
        ny, nx = (int(rng.integers(lo, hi + 1)) for lo, hi in PHANTOM_SIZES)
        pool.append(SourceSeries(phantom_series("cine", 12, ny, nx, rng), "Phantom", f"P{first + i:03d}"))
    return pool


def domain_names(series: list[SourceSeries]) -> list[str]:
    """SDA domains: each source centre, with motion series (Cine) and contrast series (Mapping) apart."""
    return sorted({f"{s.center}:{group}" for s in series for group in ("Cine", "Mapping")})


def readout_window(nx: int, width: int, rng: np.random.Generator) -> slice:
    """``width`` readout columns overlapping the body, which fills the central half of an oversampled readout."""
    if width <= 0 or width >= nx:
        return slice(0, nx)
    low, high = max(0, nx // 4 - width // 4), min(nx - width, 3 * nx // 4 - 3 * width // 4)
    start = int(rng.integers(low, max(low, high) + 1))
    return slice(start, start + width)


def kt_probabilities(kt_weights: dict[str, float] | None) -> np.ndarray | None:
    """Each of KT_PATTERNS' probability from positive weights; None without weights: the three equally often, drawn as
    the stages before the weights were (ValueError on an unknown trajectory or a weight <= 0)."""
    if not kt_weights:
        return None
    if set(kt_weights) - set(KT_PATTERNS) or min(kt_weights.values()) <= 0:
        raise ValueError(f"k-t trajectory weights must be positive, among {KT_PATTERNS}, got {kt_weights}")
    return np.array([kt_weights.get(p, 0.0) for p in KT_PATTERNS]) / sum(kt_weights.values())


class SimulatedSampler:
    """Draws a source series, an input kind, a pattern, an AF and an ACS size, and builds the window."""

    def __init__(self, series: list[SourceSeries], domains: list[str], acquisition: Acquisition,
                 kind_weights: dict[str, float], acs_choices: tuple[int, ...] = (16, 20, 24),
                 crop_width: int = 0, window: int = 5, reflect_augment: bool = True,
                 centre_weights: dict[str, float] | None = None, kt_weights: dict[str, float] | None = None,
                 geometry: Geometry = Geometry(), keep_maps: bool = False):
        if not series:
            raise ValueError("no source series to simulate from")
        unknown = set(kind_weights) - set(KINDS)
        if unknown or not kind_weights:
            raise ValueError(f"input kinds must be among {KINDS}, got {sorted(kind_weights)}")
        self.series, self.domains, self.acquisition = series, domains, acquisition
        self.kinds = sorted(kind_weights)
        p = np.array([kind_weights[k] for k in self.kinds], float)
        self.kind_p = p / p.sum()
        weights = np.array([(centre_weights or {}).get(s.center, 1.0) for s in series], float)
        counts = {c: sum(s.center == c for s in series) for c in {s.center for s in series}}
        weights = weights / np.array([counts[s.center] for s in series])      # centres balanced, then weighted
        self.series_p = weights / weights.sum()
        self.acs_choices, self.crop_width, self.window = acs_choices, crop_width, window
        self.reflect_augment, self.geometry = reflect_augment, geometry
        self.keep_maps = keep_maps         # samples carry the drawn coil maps (benchmarks.oracle_maps)
        self.kt_p = kt_probabilities(kt_weights)

    def draw(self, rng: np.random.Generator, accelerations: tuple[int, ...]) -> Sample:
        source = self.series[rng.choice(len(self.series), p=self.series_p)]
        kind = self.kinds[rng.choice(len(self.kinds), p=self.kind_p)]
        images, cyclic = self.kind_series(source.images, kind, rng)
        if self.reflect_augment:
            images = images[:, ::-1] if rng.random() < 0.5 else images
            images = images[:, :, ::-1] if rng.random() < 0.5 else images
        if self.geometry.active:           # no draw when off, so the stages before it keep their windows
            images = rotate_zoom(np.ascontiguousarray(images), *self.geometry.draw(rng))
        trim = rng.integers(0, 3, 2)                       # odd and even phase-encode counts
        images = np.ascontiguousarray(images[:, trim[0]:images.shape[1] - trim[1]])
        # both drawn for every window, as before --train-kt, so a seed gives the draws it gave the earlier stages
        kt_pattern, any_pattern = self.kt_pattern(rng), ALL_PATTERNS[rng.integers(4)]
        pattern = {"kt": kt_pattern, "uniform": "Uniform"}.get(kind, any_pattern)
        factors = tuple(accelerations) + (UNIFORM_EXTRA_FACTORS if pattern == "Uniform" else ())
        factor = int(factors[rng.integers(len(factors))])
        acs_options = [a for a in self.acs_choices if pattern != "ktRadial" or a != 24]   # 2023 has no radial
        num_acs = int(acs_options[rng.integers(len(acs_options))])
        domain = f"{source.center}:{'Mapping' if kind == 'mapping' else 'Cine'}"
        return self.build(images, cyclic, pattern, factor, num_acs, domain, rng)

    def kt_pattern(self, rng: np.random.Generator) -> str:
        if self.kt_p is None:
            return KT_PATTERNS[rng.integers(len(KT_PATTERNS))]
        return KT_PATTERNS[rng.choice(len(KT_PATTERNS), p=self.kt_p)]

    @staticmethod
    def kind_series(images: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        """(series for this kind, whether its windows wrap)."""
        if kind == "static":
            return images[int(rng.integers(len(images)))][None], False
        if kind == "mapping":
            frame = images[int(rng.integers(len(images)))]
            return (t1_series(frame, rng) if rng.random() < 0.6 else t2_series(frame, rng)), False
        return images, True

    def build(self, images: np.ndarray, cyclic: bool, pattern: str, factor: int, num_acs: int, domain: str,
              rng: np.random.Generator) -> Sample:
        nt, ny, nx = images.shape
        columns = readout_window(nx, self.crop_width, rng)
        draw = draw_acquisition(images, self.acquisition, rng)
        frames_k = acquire(images, draw, rng, columns)                                   # (nt, C, ny, w)
        width = frames_k.shape[-1]
        masks = torch.from_numpy(make_mask(pattern, nt, ny, width, factor, num_acs, rng).astype(np.float32))
        masked_all = frames_k * masks[:, None]
        t = int(rng.integers(nt))
        frames = adjacent_frames(t, nt, self.window, cyclic=cyclic)
        masked = masked_all[frames][None]                                                 # (1, F, C, ny, w)
        scale = kspace_scale(masked).reshape(-1)[0]
        full_centre = frames_k[t][None] / scale
        volume_max = rss(ifft2c(frames_k), dim=1).amax() / scale
        return Sample(masked_kspace=masked / scale, mask=masks[frames][:, None][None], full_kspace=full_centre,
                      shared_kspace=shared_kspace(masked_all, masks)[None] / scale,
                      target=rss(ifft2c(full_centre)).float(), data_range=volume_max.reshape(1).float(),
                      domain=self.domains.index(domain), radial=pattern == "ktRadial", pattern=pattern,
                      acceleration=factor, num_acs=num_acs,
                      maps=torch.from_numpy(np.ascontiguousarray(draw.maps[..., columns]))[None] if self.keep_maps
                      else None)
