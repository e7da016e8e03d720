"""CMRxRecon training trees: fully sampled k-space read one slice at a time, masks drawn on the fly or the
release's own, 5-frame windows.

The layouts (2023, 2024, 2025, several trees at once) are read by training.layouts; shapes and slices come from
training.slice_index. The SDA domain of a file is its (centre, modality) pair, the centre of a 2023 or 2024
file being its release.
"""
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from challenge.masks import make_mask
from challenge.matio import MatReadError, read_mask
from model.coils import rss
from model.fftc import ifft2c
from model.normalisation import kspace_scale
from model.reflection import reflect
from model.view_sharing import shared_kspace
from model.window import adjacent_frames
from training.layouts import MaskFile, TrainingFile
from training.slice_index import SliceReader

log = logging.getLogger("genre.train.data")
MASK_SOURCES = ("drawn", "release", "both")    # masks drawn on the fly, the release's own, or either at random
FIXED_MASKS_KEPT = 64      # deterministic masks kept per process (bool; 1.5 MB for a 12 x 246 x 512 cine slice)


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
    maps: torch.Tensor | None = None   # (1, C, H, W) complex64: the simulator's coil maps, where asked (diagnostics)

    def _map(self, move) -> "Sample":
        return Sample(**{f.name: (move(v) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
                         for f in fields(self)})

    def pin_memory(self) -> "Sample":
        """A copy in page-locked memory (DataLoader(pin_memory=True) calls this), for non-blocking copies."""
        return self._map(lambda t: t.pin_memory())

    def to(self, device: torch.device, non_blocking: bool = False) -> "Sample":
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))


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


def domain_probabilities(domains: list[str], centre_weights: dict[str, float]) -> np.ndarray:
    """Drawing probability of each ``centre:modality`` domain: its centre's weight (1 unless named),
    normalised. Equal weights are the balanced draw."""
    weights = np.array([centre_weights.get(d.split(":", 1)[0], 1.0) for d in domains], dtype=float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"centre weights {centre_weights} leave no domain of {domains} to draw")
    return weights / weights.sum()


class WindowSampler:
    """Draws (file, slice, frame, pattern, R) with balanced domains (or weighted by centre) and builds the
    5-frame sample from that one slice; with ``reflect_augment`` the anatomy is first reflected along ny, nx,
    both or neither. ``masks``: "drawn" (the official mask algorithms, on the fly), "release" (the release's own
    mask files; files without any are left out) or "both" (either, at random, where a file has release masks).
    A file that fails to read is skipped with a log line and another window drawn."""

    def __init__(self, files: list[TrainingFile], domains: list[str], patterns: tuple[str, ...],
                 num_acs: int, window: int = 5, reader: SliceReader | None = None,
                 centre_weights: dict[str, float] | None = None, reflect_augment: bool = False,
                 masks: str = "drawn", windows_per_read: int = 1):
        if windows_per_read < 1:
            raise ValueError(f"windows_per_read must be >= 1, got {windows_per_read}")
        if masks not in MASK_SOURCES:
            raise ValueError(f"masks must be one of {MASK_SOURCES}, got {masks!r}")
        if masks == "release":
            without = [f for f in files if not f.masks]
            if without:
                log.info("masks=release: %d files without release masks left out (first: %s)", len(without),
                         without[0].path)
            files = [f for f in files if f.masks]
        if not files:
            raise ValueError("no training files" + (" with release masks" if masks == "release" else ""))
        self.domains = domains
        grouped = {d: [f for f in files if f.domain_name == d] for d in domains}
        self.by_domain = {d: fs for d, fs in grouped.items() if fs}
        self.centre_weights = centre_weights
        self.domain_p = domain_probabilities(list(self.by_domain), centre_weights) if centre_weights else None
        self.patterns = patterns
        self.num_acs = num_acs
        self.window = window
        self.reflect_augment = reflect_augment
        self.masks = masks
        self.reader = reader or SliceReader()
        self._slice_peaks: dict[tuple[Path, int], float] = {}   # one float per slice drawn, never k-space
        self._fixed_masks: dict[tuple, np.ndarray] = {}         # bool (nt, ny, nx) of the deterministic patterns
        # windows_per_read > 1: the last slice read serves that many windows (frame, mask, AF drawn anew each),
        # so the read and the slice's peak are paid once for them; one slice is held per process
        self.windows_per_read = windows_per_read
        self._held: tuple[TrainingFile, int, np.ndarray] | None = None
        self._held_left = 0

    def release_held(self) -> None:
        """Forget the held slice: the next draw reads a new one (each epoch starts so)."""
        self._held, self._held_left = None, 0

    def draw(self, rng: np.random.Generator, accelerations: tuple[int, ...]) -> Sample:
        if self._held is not None and self._held_left > 0:
            self._held_left -= 1
            file, z, kspace = self._held
            t = int(rng.integers(kspace.shape[0]))
            pattern = self.patterns[rng.integers(len(self.patterns))]
            factor = int(accelerations[rng.integers(len(accelerations))])
            try:
                return self.window_sample(file, kspace, z, t, pattern, factor, rng, accelerations)
            except (MatReadError, OSError) as error:      # a broken release mask: read another slice
                log.warning("skipped %s: %s", file.path, error)
                self._held = None
        while self.by_domain:
            names = list(self.by_domain)
            # the balanced draw keeps its own random stream so that earlier runs reproduce
            index = rng.integers(len(names)) if self.domain_p is None else rng.choice(len(names), p=self.domain_p)
            candidates = self.by_domain[names[index]]
            file = candidates[rng.integers(len(candidates))]
            try:
                return self.draw_from(file, rng, accelerations)
            except (MatReadError, OSError) as error:
                log.warning("skipped %s for the rest of this run: %s", file.path, error)
                self.drop(file)
        raise RuntimeError("every training file failed to read (see the log)")

    def draw_from(self, file: TrainingFile, rng: np.random.Generator, accelerations: tuple[int, ...]) -> Sample:
        nt, nz = self.reader.shape(file.path)[:2]
        z, t = int(rng.integers(nz)), int(rng.integers(nt))
        pattern = self.patterns[rng.integers(len(self.patterns))]
        factor = int(accelerations[rng.integers(len(accelerations))])
        kspace = self.reader.read_slice(file.path, z)                                    # (nt, C, ny, nx)
        if self.windows_per_read > 1:
            self._held, self._held_left = (file, z, kspace), self.windows_per_read - 1
        return self.window_sample(file, kspace, z, t, pattern, factor, rng, accelerations)

    def window_sample(self, file: TrainingFile, kspace: np.ndarray, z: int, t: int, pattern: str, factor: int,
               rng: np.random.Generator, accelerations: tuple[int, ...]) -> Sample:
        """The sample of frame t of slice z (nt, C, ny, nx), with a drawn or a release mask."""
        release = None
        if file.masks and (self.masks == "release" or (self.masks == "both" and rng.random() < 0.5)):
            release = self.release_mask(file, accelerations, rng)
        return self.build(file, kspace, z, t, pattern, factor, rng, release)

    def drop(self, file: TrainingFile) -> None:
        """Leave an unreadable file out of every later draw (of this process)."""
        for domain in list(self.by_domain):
            self.by_domain[domain] = [f for f in self.by_domain[domain] if f.path != file.path]
            if not self.by_domain[domain]:
                del self.by_domain[domain]
        if self.centre_weights and self.by_domain:
            self.domain_p = domain_probabilities(list(self.by_domain), self.centre_weights)

    @staticmethod
    def release_mask(file: TrainingFile, accelerations: tuple[int, ...], rng: np.random.Generator
                     ) -> MaskFile:
        """One of the file's release masks, at one of the curriculum's AFs where the release has one."""
        options = [m for m in file.masks if m.factor in accelerations] or list(file.masks)
        return options[rng.integers(len(options))]

    @staticmethod
    def release_mask_array(mask: MaskFile, nt: int, ny: int, nx: int) -> np.ndarray:
        """The release mask as (nt, ny, nx) float32 (a 2-D mask is the same in every frame)."""
        data = read_mask(mask.path)
        if data.shape[-2:] != (ny, nx) or (data.ndim == 3 and data.shape[0] != nt):
            raise MatReadError(f"{mask.path}: mask shape {data.shape} does not fit k-space (nt, ny, nx) = "
                               f"{(nt, ny, nx)}")
        return np.broadcast_to(data, (nt, ny, nx)).astype(np.float32)

    def build(self, file: TrainingFile, kspace: np.ndarray, z: int, t: int, pattern: str, factor: int,
              rng: np.random.Generator, release: MaskFile | None = None) -> Sample:
        """The sample of frame t's window from slice z's k-space (nt, C, ny, nx)."""
        nt, _, ny, nx = kspace.shape
        frames = adjacent_frames(t, nt, self.window, cyclic=file.cyclic)
        num_acs = self.num_acs
        if release is None:
            masks = self.drawn_mask(pattern, nt, ny, nx, factor, rng)
        else:
            masks = self.release_mask_array(release, nt, ny, nx)
            pattern, factor, num_acs = release.pattern, release.factor, release.num_acs
        all_masks = torch.from_numpy(masks)
        all_frames = torch.from_numpy(kspace)
        if self.reflect_augment:
            # reflecting k-space reflects the anatomy (model.reflection); the mask is drawn as usual
            all_frames = reflect(all_frames, tuple(d for d, f in zip((-2, -1), rng.random(2) < 0.5) if f))
        # only the window's frames are masked and copied; the slice's other frames are read once, by the sum
        # of the view-shared k-space (a release slice is 121 MB, a window 50 MB)
        window = all_frames[frames]                                                       # (F, C, ny, nx)
        mask_t = all_masks[frames][:, None]                                               # (F, 1, ny, nx)
        masked = (window * mask_t)[None]                                                  # (1, F, C, ny, nx)
        scale = kspace_scale(masked).reshape(-1)[0]
        shared = shared_kspace(all_frames, all_masks)[None] / scale
        full_centre = window[len(frames) // 2][None] / scale
        target = rss(ifft2c(full_centre))
        volume_max = torch.tensor(self.slice_peak(file, kspace, z)) / scale
        return Sample(masked_kspace=masked / scale, mask=mask_t[None], full_kspace=full_centre,
                      shared_kspace=shared,
                      target=target.float(), data_range=volume_max.reshape(1).float(),
                      domain=self.domains.index(file.domain_name), radial=pattern == "ktRadial",
                      pattern=pattern, acceleration=factor, num_acs=num_acs)

    def drawn_mask(self, pattern: str, nt: int, ny: int, nx: int, factor: int, rng: np.random.Generator
                   ) -> np.ndarray:
        """An official mask as (nt, ny, nx) float32. Every pattern but ktGaussian is a function of its arguments
        (challenge.masks), so those are kept per process (a ktRadial mask of a release slice takes about as long
        to draw as the rest of the sample); ktGaussian draws from ``rng`` each time."""
        if pattern == "ktGaussian":
            return make_mask(pattern, nt, ny, nx, factor, self.num_acs, rng).astype(np.float32)
        key = (pattern, nt, ny, nx, factor)
        if key not in self._fixed_masks:
            if len(self._fixed_masks) >= FIXED_MASKS_KEPT:
                self._fixed_masks.pop(next(iter(self._fixed_masks)))
            self._fixed_masks[key] = make_mask(pattern, nt, ny, nx, factor, self.num_acs, rng)
        return self._fixed_masks[key].astype(np.float32)

    def slice_peak(self, file: TrainingFile, kspace: np.ndarray, z: int) -> float:
        """Max of the fully sampled RSS over all frames of slice z (the SSIM range), computed once per slice;
        ``kspace`` is that slice (nt, C, ny, nx). The centring shifts of ifft2c are left out: in the image they
        are a permutation and a unit-modulus phase, which leave the peak magnitude as it is (and cost a third
        of the time at release size)."""
        key = (file.path, z)
        if key not in self._slice_peaks:
            peak = 0.0
            for frame in torch.from_numpy(kspace):          # one frame at a time: (C, ny, nx), bounded memory
                image = torch.fft.ifft2(frame, norm="ortho")
                peak = max(peak, float((image.real.square() + image.imag.square()).sum(dim=0).amax()))
            self._slice_peaks[key] = peak ** 0.5
        return self._slice_peaks[key]


def fixed_validation_samples(sampler: WindowSampler, count: int, accelerations: tuple[int, ...],
                             seed: int) -> list[Sample]:
    """A fixed, seeded validation set over all patterns and the final curriculum's accelerations."""
    rng = np.random.default_rng(seed + 10_000)
    return [sampler.draw(rng, accelerations) for _ in range(count)]
