"""A synthetic beating-heart torso phantom with several MR contrasts, (nt, ny, nx) float32 in [0, 1].

Geometry in normalised coordinates (v along ny, u along nx); the torso fills about the central half of the
readout (nx) as CMRxRecon's 2x readout oversampling leaves it. The heart contracts over a cyclic cardiac
phase for cine and tagging; mapping series are ECG-triggered, so their anatomy is static and the weighting
changes from frame to frame.
"""
import numpy as np
from scipy.ndimage import gaussian_filter

TISSUES = ("background", "torso", "fat", "lung", "liver", "spine", "myocardium", "blood", "scar")
# T1 / T2 (ms) per tissue at 1.5-3 T, rough literature values
T1 = {"torso": 1100, "fat": 300, "lung": 1200, "liver": 650, "spine": 700, "myocardium": 1050, "blood": 1650,
      "scar": 450}
T2 = {"torso": 35, "fat": 70, "lung": 40, "liver": 35, "spine": 45, "myocardium": 45, "blood": 250, "scar": 60}
PROTON_DENSITY = {"torso": 0.7, "fat": 0.9, "lung": 0.15, "liver": 0.75, "spine": 0.5, "myocardium": 0.8,
                  "blood": 0.95, "scar": 0.8}
CINE = {"torso": 0.35, "fat": 0.9, "lung": 0.04, "liver": 0.3, "spine": 0.2, "myocardium": 0.28, "blood": 1.0,
        "scar": 0.3}
BLACK_BLOOD = {"torso": 0.45, "fat": 0.9, "lung": 0.04, "liver": 0.4, "spine": 0.3, "myocardium": 0.55,
               "blood": 0.03, "scar": 0.6}
LGE = {"torso": 0.15, "fat": 0.5, "lung": 0.02, "liver": 0.2, "spine": 0.1, "myocardium": 0.05, "blood": 0.45,
       "scar": 1.0}
CONTRASTS = ("cine", "T1map", "T2map", "tagging", "blackblood", "lge")


def _ellipse(v, u, cv, cu, rv, ru):
    return ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2 <= 1


def tissue_labels(ny: int, nx: int, contraction: float, geometry: dict) -> dict[str, np.ndarray]:
    """Boolean masks per tissue for one cardiac phase (contraction 0 = diastole, 1 = systole)."""
    v, u = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    g = geometry
    torso = _ellipse(v, u, 0, 0, 0.88, 0.46)
    inner = _ellipse(v, u, 0, 0, 0.80, 0.41)
    lv_r = g["lv_radius"] * (1 - 0.35 * contraction)
    wall = g["wall"] * (1 + 0.4 * contraction)
    blood = _ellipse(v, u, g["cv"], g["cu"], lv_r, lv_r * 0.55)
    myocardium = _ellipse(v, u, g["cv"], g["cu"], lv_r + wall, (lv_r + wall) * 0.55) & ~blood
    rv = _ellipse(v, u, g["cv"] - 0.28, g["cu"] - 0.02, 0.2 * (1 - 0.25 * contraction), 0.12) & ~myocardium & ~blood
    scar = myocardium & (np.arctan2(v - g["cv"], u - g["cu"]) > g["scar_angle"]) \
        & (np.arctan2(v - g["cv"], u - g["cu"]) < g["scar_angle"] + 0.8)
    labels = {
        "fat": torso & ~inner,
        "lung": _ellipse(v, u, -0.35, 0.05, 0.3, 0.22) & inner & ~(myocardium | blood | rv),
        "liver": _ellipse(v, u, 0.45, 0.12, 0.35, 0.22) & inner,
        "spine": _ellipse(v, u, 0.1, 0.33, 0.1, 0.06) & inner,
    }
    labels["torso"] = inner & ~labels["lung"] & ~labels["liver"] & ~labels["spine"]
    labels["myocardium"] = myocardium & ~scar
    labels["scar"] = scar
    labels["blood"] = blood | rv
    for name in ("myocardium", "scar", "blood"):
        for other in ("torso", "lung", "liver"):
            labels[other] &= ~labels[name]
    return labels


def _paint(labels: dict[str, np.ndarray], values: dict[str, float]) -> np.ndarray:
    image = np.zeros(next(iter(labels.values())).shape, np.float32)
    for name, mask in labels.items():
        image[mask] = values.get(name, 0.0)
    return image


def random_geometry(rng: np.random.Generator) -> dict:
    return {"cv": rng.uniform(-0.15, 0.15), "cu": rng.uniform(-0.12, 0.05), "lv_radius": rng.uniform(0.16, 0.24),
            "wall": rng.uniform(0.05, 0.08), "scar_angle": rng.uniform(-np.pi, np.pi - 0.8)}


def phantom_series(contrast: str, nt: int, ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
    """(nt, ny, nx) float32 in [0, 1] for one of CONTRASTS."""
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose one of {CONTRASTS}")
    geometry = random_geometry(rng)
    texture = 1 + 0.08 * gaussian_filter(rng.standard_normal((ny, nx)), 2.0) / 0.1
    frames = []
    for t in range(nt):
        cyclic = contrast in ("cine", "tagging")
        contraction = 0.5 * (1 - np.cos(2 * np.pi * t / nt)) if cyclic else 0.0
        labels = tissue_labels(ny, nx, contraction, geometry)
        if contrast == "cine":
            image = _paint(labels, CINE)
        elif contrast == "T1map":   # MOLLI-like inversion times, magnitude signal
            ti = np.linspace(100, 3500, nt)[t]
            image = _paint(labels, {k: PROTON_DENSITY[k] * abs(1 - 2 * np.exp(-ti / T1[k])) for k in T1})
        elif contrast == "T2map":   # T2-prepared: 0, 35, 55 ms for nt = 3
            te = (np.array([0, 35, 55]) if nt == 3 else np.linspace(0, 80, nt))[t]
            image = _paint(labels, {k: PROTON_DENSITY[k] * np.exp(-te / T2[k]) for k in T2})
        elif contrast == "tagging":
            image = _paint(labels, CINE)
            v, u = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
            depth = 0.9 * np.exp(-1.5 * t / nt)
            grid = (0.5 + 0.5 * np.cos(2 * np.pi * v / 7)) * (0.5 + 0.5 * np.cos(2 * np.pi * u / 7))
            image = image * (1 - depth * (1 - grid))
        elif contrast == "blackblood":
            image = _paint(labels, BLACK_BLOOD)
        else:
            image = _paint(labels, LGE)
        frames.append(gaussian_filter(image, 0.7) * texture)
    series = np.clip(np.stack(frames), 0, None)
    return (series / max(series.max(), 1e-6)).astype(np.float32)
