"""CMRxRecon-format training trees: fully sampled k-space, masks drawn on the fly, 5-frame windows.

Tree layout (the 2025 training layout, which names centre and vendor):
``MultiCoil/{Modality}/TrainingSet/FullSample/{Center}/{Vendor}/P###/{base}.mat`` with key ``kspace_full``
(or ``kspace``). The SDA domain of a file is its (centre, modality) pair.
"""
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from challenge.masks import make_mask
from challenge.matio import read_kspace
from model.coils import rss
from model.fftc import ifft2c
from model.normalisation import kspace_scale
from model.reflection import reflect
from model.view_sharing import shared_kspace
from model.window import adjacent_frames

CYCLIC_PREFIXES = ("cine", "aorta", "tagging")


@dataclass(frozen=True)
class TrainingFile:
    path: Path
    modality: str
    center: str
    vendor: str
    patient: str
    base: str

    @property
    def subject(self) -> str:
        return f"{self.center}/{self.vendor}/{self.patient}"

    @property
    def domain_name(self) -> str:
        return f"{self.center}:{self.modality}"

    @property
    def cyclic(self) -> bool:
        return self.base.startswith(CYCLIC_PREFIXES)


@dataclass
class Sample:
    """One training example (batch of 1), k-space already divided by its scale."""

    masked_kspace: torch.Tensor   # (1, F, C, H, W) complex64
    mask: torch.Tensor            # (1, F, 1, H, W) float32
    full_kspace: torch.Tensor     # (1, C, H, W) complex64, centre frame
    shared_kspace: torch.Tensor   # (1, C, H, W) complex64, the slice's time-averaged masked k-space (all frames)
    target: torch.Tensor          # (1, H, W) float32, RSS of the fully sampled centre frame
    data_range: torch.Tensor      # (1,) float32, max of the target volume's RSS (SSIM range)
    domain: int
    radial: bool
    pattern: str
    acceleration: int
    num_acs: int = 0              # ACS lines (or square side) of this window's mask; 0: the run's TrainConfig.num_acs


def find_training_files(root: Path) -> list[TrainingFile]:
    """Every fully sampled file of a training tree, sorted."""
    files = []
    for path in sorted(Path(root).rglob("*.mat")):
        parts = path.relative_to(root).parts
        if "FullSample" not in parts or path.name.startswith("._"):
            continue
        i = parts.index("FullSample")
        if i < 2 or len(parts) - i != 5:
            raise ValueError(f"{path}: not FullSample/<Center>/<Vendor>/<P###>/<file>.mat")
        files.append(TrainingFile(path=path, modality=parts[i - 2], center=parts[i + 1], vendor=parts[i + 2],
                                  patient=parts[i + 3], base=path.stem))
    return files


def split_by_subject(files: list[TrainingFile], val_fraction: float, seed: int
                     ) -> tuple[list[TrainingFile], list[TrainingFile]]:
    """Validation subjects drawn per domain so that every domain keeps training data where it can."""
    rng = np.random.default_rng(seed)
    val_subjects = set()
    for domain in sorted({f.domain_name for f in files}):
        subjects = sorted({f.subject for f in files if f.domain_name == domain})
        n_val = int(round(val_fraction * len(subjects))) if len(subjects) > 1 else 0
        val_subjects.update(rng.choice(subjects, size=n_val, replace=False).tolist() if n_val else [])
    train = [f for f in files if f.subject not in val_subjects]
    val = [f for f in files if f.subject in val_subjects]
    return train, val


class KspaceCache:
    """Keeps the most recently used volumes in memory (training trees are small and re-read constantly)."""

    def __init__(self, max_bytes: int = 4 << 30):
        self.max_bytes = max_bytes
        self._volumes: OrderedDict[Path, np.ndarray] = OrderedDict()

    def get(self, path: Path) -> np.ndarray:
        if path in self._volumes:
            self._volumes.move_to_end(path)
            return self._volumes[path]
        kspace = read_kspace(path).kspace
        self._volumes[path] = kspace
        while sum(v.nbytes for v in self._volumes.values()) > self.max_bytes and len(self._volumes) > 1:
            self._volumes.popitem(last=False)
        return kspace


def domain_probabilities(domains: list[str], centre_weights: dict[str, float]) -> np.ndarray:
    """Drawing probability of each ``centre:modality`` domain: its centre's weight (1 unless named),
    normalised. Equal weights are the balanced draw."""
    weights = np.array([centre_weights.get(d.split(":", 1)[0], 1.0) for d in domains], dtype=float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"centre weights {centre_weights} leave no domain of {domains} to draw")
    return weights / weights.sum()


class WindowSampler:
    """Draws (file, slice, frame, pattern, R) with balanced domains (or weighted by centre) and builds the
    5-frame sample; with ``reflect_augment`` the anatomy is first reflected along ny, nx, both or neither."""

    def __init__(self, files: list[TrainingFile], domains: list[str], patterns: tuple[str, ...],
                 num_acs: int, window: int = 5, cache: KspaceCache | None = None,
                 centre_weights: dict[str, float] | None = None, reflect_augment: bool = False):
        if not files:
            raise ValueError("no training files")
        self.domains = domains
        grouped = {d: [f for f in files if f.domain_name == d] for d in domains}
        self.by_domain = {d: fs for d, fs in grouped.items() if fs}
        self.domain_p = domain_probabilities(list(self.by_domain), centre_weights) if centre_weights else None
        self.patterns = patterns
        self.num_acs = num_acs
        self.window = window
        self.reflect_augment = reflect_augment
        self.cache = cache or KspaceCache()
        self._slice_peaks: dict[tuple[Path, int], float] = {}

    def draw(self, rng: np.random.Generator, accelerations: tuple[int, ...]) -> Sample:
        names = list(self.by_domain)
        # the balanced draw keeps its own random stream so that earlier runs reproduce
        index = rng.integers(len(names)) if self.domain_p is None else rng.choice(len(names), p=self.domain_p)
        domain = names[index]
        candidates = self.by_domain[domain]
        file = candidates[rng.integers(len(candidates))]
        kspace = self.cache.get(file.path)
        nt, nz = kspace.shape[:2]
        z, t = int(rng.integers(nz)), int(rng.integers(nt))
        pattern = self.patterns[rng.integers(len(self.patterns))]
        factor = int(accelerations[rng.integers(len(accelerations))])
        return self.build(file, kspace, z, t, pattern, factor, rng)

    def build(self, file: TrainingFile, kspace: np.ndarray, z: int, t: int, pattern: str, factor: int,
              rng: np.random.Generator) -> Sample:
        nt, _, _, ny, nx = kspace.shape
        frames = adjacent_frames(t, nt, self.window, cyclic=file.cyclic)
        all_masks = torch.from_numpy(make_mask(pattern, nt, ny, nx, factor, self.num_acs, rng).astype(np.float32))
        all_frames = torch.from_numpy(np.ascontiguousarray(kspace[:, z]))                 # (nt, C, ny, nx)
        if self.reflect_augment:
            # reflecting k-space reflects the anatomy (model.reflection); the mask is drawn as usual
            all_frames = reflect(all_frames, tuple(d for d, f in zip((-2, -1), rng.random(2) < 0.5) if f))
        all_masked = all_frames * all_masks[:, None]
        masked = all_masked[frames][None]                                                 # (1, F, C, ny, nx)
        mask_t = all_masks[frames][:, None]                                               # (F, 1, ny, nx)
        scale = kspace_scale(masked).reshape(-1)[0]
        shared = shared_kspace(all_masked, all_masks)[None] / scale
        full_centre = all_frames[frames[len(frames) // 2]][None] / scale
        target = rss(ifft2c(full_centre))
        volume_max = torch.tensor(self.slice_peak(file, kspace, z)) / scale
        return Sample(masked_kspace=masked / scale, mask=mask_t[None], full_kspace=full_centre,
                      shared_kspace=shared,
                      target=target.float(), data_range=volume_max.reshape(1).float(),
                      domain=self.domains.index(file.domain_name), radial=pattern == "ktRadial",
                      pattern=pattern, acceleration=factor, num_acs=self.num_acs)

    def slice_peak(self, file: TrainingFile, kspace: np.ndarray, z: int) -> float:
        """Max of the fully sampled RSS over all frames of slice z (the SSIM range), computed once per slice."""
        key = (file.path, z)
        if key not in self._slice_peaks:
            self._slice_peaks[key] = float(rss(ifft2c(torch.from_numpy(kspace[:, z]))).amax())
        return self._slice_peaks[key]


def fixed_validation_samples(sampler: WindowSampler, count: int, accelerations: tuple[int, ...],
                             seed: int) -> list[Sample]:
    """A fixed, seeded validation set over all patterns and the final curriculum's accelerations."""
    rng = np.random.default_rng(seed + 10_000)
    return [sampler.draw(rng, accelerations) for _ in range(count)]
