"""The organisers' undersampling masks (CMRxRecon 2024 Task1/Task2 and 2025 TaskAll MATLAB toolboxes), in numpy.

Masks are bool in h5py order: ``(ny, nx)`` or ``(nt, ny, nx)``; ny = phase encode, nx = readout. The MATLAB
generators build ``(nx, ny[, nt])`` arrays; everything here is re-expressed on the transposed axes, with the
MATLAB index arithmetic (1-based, column-major over the (ny, nt) k-t grid) kept where it changes the result.

- Uniform: every R-th ky line from the first, plus ``ncalib`` central lines; 2025 repeats it over nt.
- ktUniform: ky lines with ``(ky - t) % R == 0`` (sheared lattice), plus ACS lines (2024 only).
- ktGaussian: ``round(ny/R)`` ky draws per frame from a Gaussian-plus-floor density, repeats moved to the
  nearest free ky of the frame (``ktdup``), plus ACS lines. MATLAB's ``rng(seed); rand`` is MT19937 seeded
  with ``init_genrand(seed)``, which is what ``np.random.RandomState(seed)`` does for an int seed, so a given
  seed reproduces the toolbox's draws.
- ktRadial: ``floor(180 / (0.6 R))`` pseudo-radial spokes, rotated by the golden angle per frame, plus a
  central ``ncalib x ncalib`` square.
Centring of ACS blocks and crops follows MATLAB ``zpad``/``crop`` (model.matlab.centred): first index
``floor(n/2) + ceil(-m/2)``.
"""
import math

import numpy as np

from challenge.rules import PATTERNS
from model.matlab import centred, matlab_round

GAUSSIAN_ALPHA = 0.2          # ktMaskGenerator.m
GOLDEN_ANGLE_DEG = 137.5      # ktMaskGenerator.m: rotation of the spoke set from one frame to the next
RADIAL_RATE_SCALE = 0.6       # ktMaskGenerator.m: ktRadial runs with R * 0.6
_MATLAB_DEFAULT_SEED = 5489   # MATLAB's rng(0) is MT19937's default seed


def _check_size(**sizes: int) -> None:
    for name, value in sizes.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")


def _acs_rows(ny: int, ncalib: int) -> np.ndarray:
    rows = np.zeros(ny, dtype=bool)
    rows[centred(ny, ncalib)] = True
    return rows


def _lines_to_mask(rows: np.ndarray, nx: int) -> np.ndarray:
    """ky pattern (..., ny) -> (..., ny, nx): Cartesian masks are the same for every readout column."""
    return np.repeat(rows[..., None], nx, axis=-1)


def uniform_mask(ny: int, nx: int, R: int, ncalib: int, nt: int | None = None) -> np.ndarray:
    """UniformSampling.m: ky lines 0, R, 2R, ... plus ``ncalib`` central lines -> (ny, nx), or (nt, ny, nx)
    repeated over frames when ``nt`` is given (2025 Uniform, no interleaving)."""
    _check_size(ny=ny, nx=nx, R=R, ncalib=ncalib)
    rows = _acs_rows(ny, ncalib)
    rows[::R] = True
    mask = _lines_to_mask(rows, nx)
    if nt is None:
        return mask
    _check_size(nt=nt)
    return np.repeat(mask[None], nt, axis=0)


def _ind2xy(ind: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """1-based column-major index -> (row, column), both 1-based, as ktdup.m computes it."""
    return ind - np.floor((ind - 1) / rows) * rows, np.ceil(ind / rows)


def _ktdup(ph: np.ndarray, ti: np.ndarray, ny: int, nt: int) -> tuple[np.ndarray, np.ndarray]:
    """Move repeated k-t samples to the nearest vacant ky of the same frame (ktdup.m, R. Ahmad).

    ph, ti: centred ky and frame offsets of each sample -> the same, without repeats. Repeats are handled in
    ascending grid order, keeping each value's first occurrence; ties go to the lower ky.
    """
    pt = (ti + math.ceil((nt + 1) / 2) - 1) * ny + ph + math.ceil((ny + 1) / 2)
    values, counts = np.unique(pt, return_counts=True)
    repeated = [i for v in values[counts > 1] for i in np.flatnonzero(pt == v)[1:]]
    vacant = np.setdiff1d(np.arange(1, ny * nt + 1, dtype=float), pt)
    vacant_row, vacant_frame = _ind2xy(vacant, ny)
    for i in repeated:
        row, frame = _ind2xy(pt[i], ny)
        other_frame = (vacant_frame - frame) ** 2 > np.finfo(float).eps
        distance = np.where(other_frame, np.inf, np.abs(vacant_row - row))
        nearest = int(np.argmin(distance))  # first minimum, like MATLAB min
        pt[i] = vacant[nearest]
        vacant, vacant_row, vacant_frame = (np.delete(a, nearest) for a in (vacant, vacant_row, vacant_frame))
    row, frame = _ind2xy(pt, ny)
    return row - math.ceil((ny + 1) / 2), frame - math.ceil((nt + 1) / 2)


def _kt_samples_to_lines(ph: np.ndarray, ti: np.ndarray, ny: int, nt: int) -> np.ndarray:
    """Centred (ky, frame) samples -> sampled ky lines (nt, ny) bool, via the toolbox's linear indices."""
    ind = matlab_round(ny * (ti + nt // 2) + (ph + ny // 2 + 1)).astype(np.int64)
    if ind.min() < 1 or ind.max() > ny * nt:
        raise ValueError(f"k-t sample indices {ind.min()}..{ind.max()} outside the {ny} x {nt} grid")
    grid = np.zeros(ny * nt, dtype=bool)  # column-major (ny, nt) == row-major (nt, ny)
    grid[ind - 1] = True
    return grid.reshape(nt, ny)


def kt_uniform_mask(nt: int, ny: int, nx: int, R: int, ncalib: int) -> np.ndarray:
    """ktUniformSampling.m (2024 Task 2) -> (nt, ny, nx) bool.

    Frame t samples the ky lines with ``(ky - t) % R == 0`` (a Toeplitz matrix of a ky comb and a t comb): the
    lattice shifts one line per frame and never samples a (ky, t) twice, so ktdup has nothing to move. This is
    the toolbox's mask for even nt. For odd nt the toolbox centres frames with ``floor(nt)/2``, a half-integer,
    which scrambles the lattice by half a frame (or indexes past the grid and fails); the intended lattice is
    used there instead.
    """
    _check_size(nt=nt, ny=ny, nx=nx, R=R, ncalib=ncalib)
    ky, t = np.arange(ny), np.arange(nt)
    lines = ((ky[None, :] - t[:, None]) % R == 0) | _acs_rows(ny, ncalib)
    return _lines_to_mask(lines, nx)


def _matlab_rand(seed: int, n: int) -> np.ndarray:
    """MATLAB ``rng(seed); rand(n, 1)`` (Mersenne twister)."""
    return np.random.RandomState(int(seed) or _MATLAB_DEFAULT_SEED).random_sample(n)


def kt_gaussian_mask_from_seed(nt: int, ny: int, nx: int, R: int, ncalib: int, seed: int,
                               alpha: float = GAUSSIAN_ALPHA) -> np.ndarray:
    """ktGaussianSampling.m with the toolbox seed ``seed`` (it draws randi([1 1000])) -> (nt, ny, nx) bool."""
    _check_size(nt=nt, ny=ny, nx=nx, R=R, ncalib=ncalib)
    lines_per_frame = int(matlab_round(ny / R))
    ky = np.arange(-(ny // 2), ny - ny // 2)
    sigma = ny / 5
    density = 0.1 + alpha / (1 - alpha + 1e-10) * np.exp(-ky.astype(float) ** 2 / sigma ** 2)
    cumulative = np.cumsum(density)
    edges = np.concatenate([[0.0], cumulative]) / cumulative[-1]
    frame_seeds = matlab_round(1e6 * _matlab_rand(seed, nt)).astype(np.int64)
    ph, ti = [], []
    for frame in range(nt):
        draws = _matlab_rand(frame_seeds[frame], lines_per_frame)
        line = np.searchsorted(edges, draws, side="right")   # randp: 1-based bin of each draw
        ph.append(line - ny // 2 - 1)
        ti.append(np.full(lines_per_frame, frame - nt // 2))
    ph, ti = _ktdup(np.concatenate(ph).astype(float), np.concatenate(ti).astype(float), ny, nt)
    lines = _kt_samples_to_lines(ph, ti, ny, nt) | _acs_rows(ny, ncalib)
    return _lines_to_mask(lines, nx)


def kt_gaussian_mask(nt: int, ny: int, nx: int, R: int, ncalib: int, rng: np.random.Generator,
                     alpha: float = GAUSSIAN_ALPHA) -> np.ndarray:
    """ktGaussian mask with a toolbox seed in 1..1000 drawn from ``rng`` -> (nt, ny, nx) bool."""
    return kt_gaussian_mask_from_seed(nt, ny, nx, R, ncalib, int(rng.integers(1, 1001)), alpha)


def _cos_sin_deg(angle: float) -> tuple[float, float]:
    """cosd/sind, exact at multiples of 90 degrees like MATLAB's."""
    quarter, rest = divmod(angle % 360.0, 90.0)
    if rest == 0:
        return [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][int(quarter)]
    radians = math.radians(angle)
    return math.cos(radians), math.sin(radians)


def _draw_spoke(image: np.ndarray, angle: float, side: int, first_row: int, first_col: int) -> None:
    """OR one spoke into ``image``: the centre row of a ``side x side`` image, rotated counter-clockwise by
    ``angle`` degrees about the image centre with nearest-neighbour sampling (imrotate 'crop'), seen through
    the window of ``image.shape`` whose top-left pixel is the 0-based (first_row, first_col).

    A rotated line covers at most two pixels per column (or per row, whichever axis it crosses more
    steeply), so only five candidates around the line per column (row) are tested with the exact
    inverse-mapping rule, instead of the whole image.
    """
    centre = (side + 1) / 2
    line_row = matlab_round(side / 2)
    cos_a, sin_a = _cos_sin_deg(angle)
    offsets = np.arange(-2, 3)[:, None]
    if abs(cos_a) >= abs(sin_a):   # one candidate set per column
        cols = np.arange(image.shape[1])[None, :]
        u = cols + first_col + 1 - centre
        v = matlab_round((line_row - centre - u * sin_a) / cos_a + centre) + offsets - centre
        rows = (v + centre - 1 - first_row).astype(np.int64)
    else:                          # one candidate set per row
        rows = np.arange(image.shape[0])[None, :]
        v = rows + first_row + 1 - centre
        u = matlab_round((line_row - centre - v * cos_a) / sin_a + centre) + offsets - centre
        cols = (u + centre - 1 - first_col).astype(np.int64)
    u, v = np.broadcast_arrays(u, v)
    rows, cols = np.broadcast_arrays(rows, cols)
    source_row = matlab_round(u * sin_a + v * cos_a + centre)
    source_col = matlab_round(u * cos_a - v * sin_a + centre)
    hit = ((source_row == line_row) & (source_col >= 1) & (source_col <= side)
           & (rows >= 0) & (rows < image.shape[0]) & (cols >= 0) & (cols < image.shape[1]))
    image[rows[hit], cols[hit]] = True


def kt_radial_mask(nt: int, ny: int, nx: int, R: int, ncalib: int,
                   frame_rotation_deg: float = GOLDEN_ANGLE_DEG) -> np.ndarray:
    """ktRadialSampling.m with the generator's settings (R * 0.6, golden-angle rotation, corners cropped)
    -> (nt, ny, nx) bool. Spokes live on a ``max(nx, ny)`` square that is centre-cropped to the matrix."""
    _check_size(nt=nt, ny=ny, nx=nx, R=R, ncalib=ncalib)
    rate = 1 / (R * RADIAL_RATE_SCALE)
    spokes = math.floor(rate * 180)
    if spokes < 1:
        raise ValueError(f"R={R} leaves no radial spoke")
    step = 180 / spokes
    side = max(nx, ny)
    # the MATLAB image is (nx, ny): its rows run along nx, its columns along ny
    first_row, first_col = centred(side, nx).start, centred(side, ny).start
    acs = np.zeros((ny, nx), dtype=bool)
    acs[centred(ny, ncalib), centred(nx, ncalib)] = True
    mask = np.empty((nt, ny, nx), dtype=bool)
    for frame in range(nt):
        first = frame_rotation_deg * frame
        image = np.zeros((nx, ny), dtype=bool)
        for k in range(spokes + 1):   # 0 : step : 180, both ends included
            _draw_spoke(image, first + k * step, side, first_row, first_col)
        mask[frame] = image.T | acs
    return mask


def make_mask(pattern: str, nt: int, ny: int, nx: int, R: int, ncalib: int,
              rng: np.random.Generator) -> np.ndarray:
    """Any official pattern -> (nt, ny, nx) bool; ``rng`` is used by ktGaussian only."""
    if pattern == "Uniform":
        return uniform_mask(ny, nx, R, ncalib, nt)
    if pattern == "ktUniform":
        return kt_uniform_mask(nt, ny, nx, R, ncalib)
    if pattern == "ktGaussian":
        return kt_gaussian_mask(nt, ny, nx, R, ncalib, rng)
    if pattern == "ktRadial":
        return kt_radial_mask(nt, ny, nx, R, ncalib)
    raise ValueError(f"unknown mask pattern {pattern!r}; expected one of {', '.join(PATTERNS)}")
