"""A scanner-like acquisition of a magnitude series: measured coils, correlated noise, structured phase, shading.

magnitude (nt, ny, nx) -> x shading -> x phase (smooth background that may wrap, fat/water-like patches,
through-plane flow in the bright blood, fine texture; optionally offsets tied to the anatomy) -> optionally
x bSSFP off-resonance bands (dark lines with a sign flip across them) -> x coil maps
(measured and augmented, or analytic) -> centred orthonormal FFT -> + coil-correlated complex Gaussian noise ->
x global scale.

Every effect is a switch of ``Acquisition`` with the default the trainer uses. The noise is added in k-space but is white
along the readout, so simulating a readout crop of the image (training's hybrid-space crop) and adding the
noise there has the same statistics as cropping the fully simulated k-space after the inverse FFT along x.
"""
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, label

from model.coils import rss
from model.fftc import fft2c, ifft2c
from simulation.acquisition import smooth_phase
from simulation.anatomy import RealDataMissing
from simulation.coils import surface_coil_sensitivities
from simulation.measured_coils import augmented_maps

COIL_COUNTS = (4, 8, 10, 10, 10, 12, 16, 20, 24, 32)     # 10 is what most CMRxRecon files carry


@dataclass(frozen=True)
class Acquisition:
    measured_coils: float = 0.7          # probability of measured (augmented) maps rather than analytic ones
    combined_single: float = 0.5         # 1-coil draws: probability of a coil-combined image (the CMRxRecon 2023
                                         # SingleCoil track's kind: unit sensitivity) rather than one physical coil
    coil_counts: tuple[int, ...] = COIL_COUNTS
    noise_correlation: float = 0.5       # largest off-diagonal share of the noise covariance
    snr: tuple[float, float] = (6.0, 80.0)          # log-uniform, object mean over per-coil image noise std
    phase_strength: tuple[float, float] = (0.3, 3.0)  # smooth background phase, x pi at most: > 1 wraps
    phase_patches: float = 0.5           # probability of fat/water-like phase patches
    flow: float = 0.5                    # probability of a pulsatile phase in the brightest (blood) pixels
    phase_texture: float = 0.3           # radians of fine-scale phase texture (std), drawn in [0, this]
    # probability of phase offsets tied to the anatomy (tissue_phase): real cine images change phase by about pi
    # across tissue boundaries (fat against water in bSSFP, either side of an off-resonance band), which a smooth
    # phase and random blobs do not imitate. Off by default, so the draws of every earlier stage stay as they were
    tissue_phase: float = 0.0
    # probability of bSSFP off-resonance bands: where the field's phase per TR crosses an odd multiple of pi the
    # signal falls to zero and changes sign (the thin dark fringes at the edges of real cine frames). Off by default
    # for the same reason
    off_resonance_bands: float = 0.0
    shading: float = 0.6                 # depth of a slow multiplicative intensity shading, drawn in [0, this]
    log10_scale: tuple[float, float] = (-4.0, 2.0)   # global k-space scale: 6 orders of magnitude

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Acquisition":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def overridden(self, pairs: list[str]) -> "Acquisition":
        """This acquisition with ``["NAME=VALUE", ...]`` replaced (a tuple field as comma-separated values, e.g.
        ``snr=6,80``); ValueError naming the pair when NAME is no field or VALUE does not parse."""
        changes, names = {}, [f.name for f in fields(self)]
        for pair in pairs:
            name, sep, text = pair.partition("=")
            try:
                if not sep or name not in names:
                    raise ValueError("no such field")
                default = getattr(self, name)
                if isinstance(default, tuple):
                    changes[name] = tuple(type(default[0])(item) for item in text.split(","))
                else:
                    changes[name] = type(default)(text)
            except ValueError as error:
                raise ValueError(f"{pair!r}: expected NAME=VALUE with NAME one of "
                                 f"{', '.join(names)} ({error})") from None
        return replace(self, **changes)


def _smooth_field(ny: int, nx: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal((ny, nx)), (ny * scale, nx * scale), mode="wrap")
    return field / (np.abs(field).max() + 1e-12)


def structured_phase(magnitude: np.ndarray, config: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """(nt, ny, nx) magnitude -> (nt, ny, nx) float32 phase in radians."""
    nt, ny, nx = magnitude.shape
    phase = np.broadcast_to(smooth_phase(ny, nx, rng, rng.uniform(*config.phase_strength)), (nt, ny, nx)).copy()
    if rng.random() < config.phase_patches:
        # fat/water-like: patches with a phase offset near pi, sharp edged, in a few blobs
        blobs = _smooth_field(ny, nx, rng, 0.03) > rng.uniform(0.3, 0.6)
        phase += (np.pi + rng.normal(0, 0.3)) * blobs[None]
    if rng.random() < config.flow and nt > 1:
        # through-plane flow: a pulsatile phase in the brightest region (the blood pool of bright-blood cine)
        mean = magnitude.mean(0)
        blood = gaussian_filter((mean > np.quantile(mean, 0.97)).astype(float), 1.0)
        cycle = np.sin(2 * np.pi * np.arange(nt) / nt + rng.uniform(0, 2 * np.pi))
        phase += rng.uniform(0.5, 2.5) * cycle[:, None, None] * blood[None]
    texture = rng.uniform(0, config.phase_texture)
    if texture > 0:
        phase += texture * gaussian_filter(rng.standard_normal((ny, nx)), 0.7)[None] / 0.2
    if config.tissue_phase > 0 and rng.random() < config.tissue_phase:
        phase += tissue_phase(magnitude.mean(0), rng)[None]
    return phase.astype(np.float32)


def tissue_phase(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(ny, nx) magnitude -> (ny, nx) phase offsets in radians, constant over each connected region of the image's
    intensity classes (3-6 intensity bands of a slightly smoothed image): a random share of the regions is offset
    by about pi, the rest by a little, so the phase jumps where the tissue changes, with sharp edges."""
    smooth = gaussian_filter(image, rng.uniform(1.0, 3.0))
    classes = int(rng.integers(3, 7))
    # class edges at random intensities between the darkest and brightest few percent (not at quantiles, which
    # fall on the value of a large flat region and would split it)
    edges = np.sort(rng.uniform(*np.percentile(smooth, [5, 99.5]), classes - 1))
    levels = np.digitize(smooth, edges)
    share = rng.uniform(0.2, 0.5)
    offsets = np.zeros(image.shape)
    for level in range(classes):
        regions, count = label(levels == level)
        table = np.where(rng.random(count + 1) < share, np.pi, 0.0) + rng.normal(0, 0.3, count + 1)
        table[0] = 0.0                                   # pixels of the other classes
        offsets += table[regions]
    return offsets


def off_resonance_bands(ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
    """(ny, nx) real factor in [-1, 1]: the bSSFP signal's response to an off-resonance field that is shimmed near a
    random point and grows away from it (slowly, then fast towards the edges, with a smooth perturbation). The
    response is flat in the pass band and falls to zero where the phase per TR, theta, crosses an odd multiple of
    pi, changing sign there: tanh(cos(theta / 2) / width), normalised. Zero to about six bands cross the image,
    mostly towards its edges."""
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    cy, cx = rng.uniform(-0.4, 0.4, 2)
    stretch = rng.uniform(0.5, 2.0)                          # an elliptical shim region, either way round
    distance = np.sqrt(stretch * (y - cy) ** 2 + (x - cx) ** 2 / stretch)
    growth = (distance / distance.max()) ** rng.uniform(2.0, 5.0)
    theta = np.pi * (rng.uniform(-0.8, 0.8) + rng.uniform(1.0, 12.0) * growth
                     + rng.uniform(0.0, 1.5) * _smooth_field(ny, nx, rng, 0.15))
    width = rng.uniform(0.03, 0.3)                           # the dark band's width, as a share of the response
    return (np.tanh(np.cos(theta / 2) / width) / np.tanh(1 / width)).astype(np.float32)


def coil_maps(nc: int, ny: int, nx: int, config: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """(nc, ny, nx) complex64: measured-and-augmented where drawn (and available), else analytic surface coils;
    one coil may instead be a coil-combined image (unit sensitivity: its phase and shading come from the draw)."""
    if nc == 1 and rng.random() < config.combined_single:
        return np.ones((1, ny, nx), np.complex64)
    if rng.random() < config.measured_coils:
        try:
            return augmented_maps(nc, ny, nx, rng)
        except RealDataMissing:
            pass
    maps = surface_coil_sensitivities(nc, ny, nx, rng)
    return (maps / np.sqrt((np.abs(maps) ** 2).sum(0)).mean()).astype(np.complex64)


def noise_factor(nc: int, config: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """(nc, nc) complex L with L L^H the noise covariance: unequal coil noise levels, correlated coils."""
    a = (rng.standard_normal((nc, nc)) + 1j * rng.standard_normal((nc, nc))) / np.sqrt(2 * nc)
    share = rng.uniform(0, config.noise_correlation)
    covariance = (1 - share) * np.eye(nc) + share * (a @ a.conj().T)
    levels = np.exp(rng.normal(0, 0.25, nc))
    covariance = covariance * np.outer(levels, levels)
    return np.linalg.cholesky(covariance / np.real(np.trace(covariance)) * nc).astype(np.complex64)


@dataclass
class Draw:
    """The random choices of one acquisition of one slice, drawn once and applied to any crop of it."""
    maps: np.ndarray            # (nc, ny, nx) complex64
    phase: np.ndarray           # (nt, ny, nx) float32
    shading: np.ndarray         # (ny, nx) float32
    noise: np.ndarray           # (nc, nc) complex64 factor of the noise covariance
    sigma: float                # per-coil image-domain noise std before the covariance's coil levels
    scale: float


def draw_acquisition(magnitude: np.ndarray, config: Acquisition, rng: np.random.Generator,
                     n_coils: int | None = None) -> Draw:
    """All random choices for a (nt, ny, nx) magnitude series."""
    nt, ny, nx = magnitude.shape
    nc = int(n_coils or rng.choice(config.coil_counts))
    maps = coil_maps(nc, ny, nx, config, rng)
    shading = 1 + rng.uniform(0, config.shading) * _smooth_field(ny, nx, rng, 0.2)
    object_level = float(magnitude[magnitude > 0.1 * magnitude.max()].mean()) if magnitude.max() > 0 else 1.0
    snr = float(np.exp(rng.uniform(*np.log(config.snr))))
    phase = structured_phase(magnitude, config, rng)
    noise = noise_factor(nc, config, rng)
    scale = float(10 ** rng.uniform(*config.log10_scale))
    # drawn last, and only when switched on, so that every other choice of this draw matches the draw without it
    # (the generator then stands elsewhere: later draws from it, such as masks and noise, differ)
    if config.off_resonance_bands > 0 and rng.random() < config.off_resonance_bands:
        bands = off_resonance_bands(ny, nx, rng)
        shading, phase = shading * np.abs(bands), phase + np.float32(np.pi) * (bands < 0)
    return Draw(maps=maps, phase=phase, shading=shading.astype(np.float32), noise=noise,
                sigma=object_level / snr, scale=scale)


def acquire(magnitude: np.ndarray, draw: Draw, rng: np.random.Generator, columns: slice = slice(None)
            ) -> torch.Tensor:
    """Fully sampled k-space (nt, nc, ny, w) complex64 of the readout columns ``columns`` of the image
    (the whole width by default): the hybrid-space crop of the acquisition ``draw`` describes."""
    weighted = torch.from_numpy(np.ascontiguousarray(magnitude[..., columns] * draw.shading[:, columns]))
    image = torch.polar(weighted.float(), torch.from_numpy(np.ascontiguousarray(draw.phase[..., columns])))
    kspace = fft2c(image[:, None] * torch.from_numpy(np.ascontiguousarray(draw.maps[..., columns]))[None])
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    white = torch.randn(kspace.shape, dtype=torch.complex64, generator=generator)   # unit complex variance
    noise = torch.einsum("ij,tjyx->tiyx", torch.from_numpy(draw.noise), white)
    return (kspace + draw.sigma * noise) * draw.scale


def simulate(magnitude: np.ndarray, config: Acquisition, rng: np.random.Generator, n_coils: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """magnitude (nt, ny, nx) -> (fully sampled k-space (nt, nc, ny, nx) complex64, RSS reference (nt, ny, nx)
    float32, noise included as in the organisers' references)."""
    kspace = acquire(magnitude, draw_acquisition(magnitude, config, rng, n_coils), rng)
    return kspace.numpy(), rss(ifft2c(kspace), dim=1).numpy().astype(np.float32)
