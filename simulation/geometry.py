"""In-plane rotation and zoom of a magnitude series on its own pixel grid (training augmentation).

Ten scanners' subjects give few hearts; reflecting them (training.simulated's ``reflect_augment``) was the largest
gain of any change to the training data (docs/training-history.md, stage 6). A rotation and a small zoom draw
further orientations and heart sizes from the same anatomy, on the native pixel grid: the pixel size stays the
acquired one, and the zoom stays within the spread of heart sizes between subjects. Measured from the converged
stage-24 generator (stage 27, ±20 degrees and 10%): no gain over the same steps without it.
"""
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import affine_transform


@dataclass(frozen=True)
class Geometry:
    rotate_degrees: float = 0.0      # angle drawn uniformly in [-this, this]
    zoom: float = 0.0                # scale drawn log-uniformly in [1 / (1 + this), 1 + this]

    def __post_init__(self):
        if not 0 <= self.rotate_degrees <= 180 or not 0 <= self.zoom < 1:
            raise ValueError(f"rotate_degrees must be in [0, 180] and zoom in [0, 1), got {self}")

    @property
    def active(self) -> bool:
        return self.rotate_degrees > 0 or self.zoom > 0

    def draw(self, rng: np.random.Generator) -> tuple[float, float]:
        """(angle in degrees, scale); consumes two draws of ``rng``."""
        angle = rng.uniform(-self.rotate_degrees, self.rotate_degrees)
        scale = float(np.exp(rng.uniform(-1, 1) * np.log1p(self.zoom)))
        return float(angle), scale


def rotate_zoom(images: np.ndarray, angle_degrees: float, scale: float) -> np.ndarray:
    """(nt, ny, nx) magnitudes in [0, 1] -> the same shape, each frame rotated by ``angle_degrees`` about the grid
    centre (index n // 2, model.fftc's origin) and magnified by ``scale`` (> 1: the anatomy larger).

    Cubic spline interpolation, clipped to [0, 1]; the area the rotation brings in from outside the grid is the
    grid reflected at its edge (a phase-encode field of view often cuts through the chest wall, so zeros there
    would draw an edge no acquisition has)."""
    if angle_degrees == 0 and scale == 1:
        return images
    theta = np.deg2rad(angle_degrees)
    # output pixel o reads input pixel matrix @ (o - centre) + centre
    matrix = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / scale
    centre = np.array(images.shape[1:]) // 2
    offset = centre - matrix @ centre
    out = np.stack([affine_transform(frame, matrix, offset=offset, order=3, mode="mirror") for frame in images])
    return np.clip(out, 0, 1).astype(images.dtype, copy=False)
