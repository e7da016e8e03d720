"""Real cine anatomy: the CMRxRecon2025 "ImageShow" magnitude PNGs in ../shared/data/real.

Each series is 12 frames of one slice of one subject. PNG rows are the readout (nx, with the 2x readout
oversampling), columns the phase encode (ny); arrays here are (t, ny, nx) float32 in [0, 1].
The data stay where they are (licence): nothing is copied, and callers get RealDataMissing when absent.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import zoom

CINE_FOLDER = "cmrx25_imageshow_cine"
_NAME = re.compile(r"^(?P<view>cine_sax|cine_lax_4ch)_slice(?P<slice>\d+)_time(?P<time>\d+)_mag\.png$")


class RealDataMissing(RuntimeError):
    """../shared/data/real (or $GENRE_REAL_DATA) is not there."""


@dataclass(frozen=True)
class CineSeries:
    folder: str            # e.g. Center002_UIH_30T_umr880_P001
    center: str            # Center002
    vendor: str            # UIH_30T_umr880, or "" where the folder names none
    patient: str           # P001
    view: str              # sax | lax
    slice: int
    files: tuple[Path, ...]
    shape: tuple[int, int]  # (ny, nx)


def real_data_root() -> Path | None:
    """$GENRE_REAL_DATA, else <repo>/../shared/data/real, if it exists."""
    configured = os.environ.get("GENRE_REAL_DATA")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    return root if root.is_dir() else None


def list_cine_series(root: Path | None = None) -> list[CineSeries]:
    root = root or real_data_root()
    folder = root / CINE_FOLDER if root else None
    if folder is None or not folder.is_dir():
        raise RealDataMissing(f"no {CINE_FOLDER} under {root or 'the shared data folder'} "
                              "(set GENRE_REAL_DATA to the folder holding it)")
    series = []
    for subject in sorted(p for p in folder.iterdir() if p.is_dir()):
        tokens = subject.name.split("_")
        groups: dict[tuple[str, int], list[tuple[int, Path]]] = {}
        for png in subject.glob("*.png"):
            match = _NAME.match(png.name)
            if match:
                groups.setdefault((match["view"], int(match["slice"])), []).append((int(match["time"]), png))
        for (view, slice_index), frames in sorted(groups.items()):
            files = tuple(p for _, p in sorted(frames))
            from PIL import Image
            with Image.open(files[0]) as image:
                width, height = image.size          # PIL: (columns = ny, rows = nx)
            series.append(CineSeries(folder=subject.name, center=tokens[0], vendor="_".join(tokens[1:-1]),
                                     patient=tokens[-1], view="sax" if view == "cine_sax" else "lax",
                                     slice=slice_index, files=files, shape=(width, height)))
    return series


def load_cine_series(record: CineSeries) -> np.ndarray:
    """(t, ny, nx) float32 in [0, 1]."""
    from PIL import Image
    frames = []
    for path in record.files:
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("L"), dtype=np.float32).T / 255.0)
    return np.stack(frames)


def load_cine_resized(record: CineSeries, ny: int, nx: int) -> np.ndarray:
    """(t, ny, nx) float32, resized with cubic interpolation and clipped to [0, 1]."""
    series = load_cine_series(record)
    factors = (1, ny / series.shape[1], nx / series.shape[2])
    resized = zoom(series, factors, order=3, grid_mode=True, mode="nearest")
    return np.clip(resized[:, :ny, :nx], 0, 1).astype(np.float32)
