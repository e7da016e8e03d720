"""Classical reconstructors: zero-filled RSS and CG-SENSE with coil maps calibrated on the ACS region.

Both work slice by slice: the slice's k-space is sanitised (non-finite samples -> 0), scaled to max |k| = 1,
reconstructed on the configured device in batches of frames, and scaled back, so tiny, huge or all-zero
k-space gives finite output.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from model.acs import acs_region, central_range, extract_acs
from model.coils import normalise_to_unit_rss, rss
from model.fftc import ifft2c
from model.interface import DEFAULT_BATCH_SIZE, VolumeMeta, check_inputs, resolve_device
from model.sense import SenseOperator

SliceMethod = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def conjugate_gradient(normal_op: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor,
                       iters: int, tol: float = 1e-6) -> torch.Tensor:
    """Solve normal_op(x) = rhs for Hermitian positive (semi-)definite normal_op, batched over dim 0.

    rhs (B, ...) complex; every batch item has its own step sizes and stops once its residual norm is below
    ``tol`` times its rhs norm. Starts from x = 0; returns x (B, ...).
    """
    def batch_dot(a, b):
        return (a.conj() * b).sum(dim=tuple(range(1, a.ndim))).real

    def per_item(values):
        return values.reshape(-1, *([1] * (rhs.ndim - 1)))

    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    residual_sq = batch_dot(residual, residual)
    stop_sq = tol ** 2 * residual_sq
    for _ in range(iters):
        active = residual_sq > stop_sq
        if not active.any():
            break
        normal_dir = normal_op(direction)
        curvature = batch_dot(direction, normal_dir)
        # a zero curvature means a zero direction: that item has converged exactly
        alpha = torch.where(active & (curvature > 0), residual_sq / curvature.clamp_min(1e-30), 0.0)
        x = x + per_item(alpha) * direction
        residual = residual - per_item(alpha) * normal_dir
        new_residual_sq = batch_dot(residual, residual)
        beta = torch.where(active, new_residual_sq / residual_sq.clamp_min(1e-30), 0.0)
        direction = residual + per_item(beta) * direction
        residual_sq = torch.where(active, new_residual_sq, residual_sq)
    return x


def estimate_sensitivities_from_acs(kspace: torch.Tensor, mask: torch.Tensor, num_acs: int,
                                    radial: bool) -> torch.Tensor:
    """Coil maps (C, H, W) complex, RSS 1 over coils (0 where there is no calibration signal).

    kspace (F, C, H, W) complex of one slice; mask broadcastable to it, e.g. (F, 1, H, W). The ACS k-space
    is averaged over the frames that sampled it (robust to k-t masks and noise), tapered with a Hann window
    over the ACS lines (fewer Gibbs ripples), and its low-resolution coil images divided by their RSS.
    """
    height, width = kspace.shape[-2:]
    acs = extract_acs(kspace, mask, num_acs, radial).sum(dim=0)
    sample_counts = (acs_region(height, width, num_acs, radial).to(kspace.device)
                     & mask.to(kspace.device, torch.bool)).sum(dim=0)
    mean_acs = acs / sample_counts.clamp_min(1)
    coil_images = ifft2c(mean_acs * _acs_window(height, width, num_acs, radial).to(kspace.device))
    return normalise_to_unit_rss(coil_images)


def _acs_window(height: int, width: int, num_acs: int, radial: bool) -> torch.Tensor:
    """Separable Hann taper (H, W) over the ACS region, 0 outside it; Cartesian ACS keeps the full readout."""
    def taper(length, lines):
        window = torch.zeros(length)
        central = central_range(length, lines)
        # drop the zero end points so that every ACS line contributes
        window[central.start:central.stop] = torch.hann_window(len(central) + 2, periodic=False)[1:-1]
        return window

    rows = taper(height, num_acs)
    cols = taper(width, num_acs) if radial else torch.ones(width)
    return rows[:, None] * cols[None, :] * acs_region(height, width, num_acs, radial)


def _frame_batches(num_frames: int, batch_size: int) -> list[slice]:
    return [slice(start, start + batch_size) for start in range(0, num_frames, max(batch_size, 1))]


def _zero_filled_rss(kspace: torch.Tensor, batch_size: int) -> torch.Tensor:
    """k-space (F, C, H, W) -> RSS (F, H, W) of its coil images."""
    return torch.cat([rss(ifft2c(kspace[frames])) for frames in _frame_batches(len(kspace), batch_size)])


def reconstruct_by_slice(kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta, device: torch.device,
                          progress: Callable[[int], None] | None, method: SliceMethod) -> np.ndarray:
    """Run ``method(kspace (nt, nc, ny, nx), mask (nt, 1, ny, nx)) -> (nt, ny, nx)`` on every slice.

    Handles validation, sanitising, scale normalisation, device transfer and progress.
    """
    mask = check_inputs(kspace, mask, meta)
    nt, nz, _, ny, nx = kspace.shape
    mask_t = torch.from_numpy(np.array(mask, dtype=bool)).to(device).unsqueeze(1)
    image = np.zeros((nt, nz, ny, nx), dtype=np.float32)
    for z in range(nz):
        slice_kspace = torch.from_numpy(np.array(kspace[:, z], dtype=np.complex64)).to(device)
        slice_kspace = torch.where(torch.isfinite(slice_kspace), slice_kspace, 0)
        scale = slice_kspace.abs().max()
        scale = torch.where(scale > 0, scale, 1.0)
        with torch.no_grad():
            slice_image = method(slice_kspace / scale, mask_t) * scale
        image[:, z] = torch.nan_to_num(slice_image, nan=0.0, posinf=0.0, neginf=0.0).cpu().numpy()
        if progress is not None:
            progress(1)
    return image


@dataclass
class ZeroFilled:
    """RSS of the inverse FFT of the acquired (zero-filled) k-space."""
    device: torch.device | str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    name: str = field(default="zerofilled", init=False)

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        def slice_method(slice_kspace, slice_mask):
            return _zero_filled_rss(slice_kspace, self.batch_size)
        return reconstruct_by_slice(kspace, mask, meta, resolve_device(self.device), progress, slice_method)


@dataclass
class CGSense:
    """Tikhonov-regularised SENSE, (A^H A + lam I) x = A^H y per frame by conjugate gradient; output |x|.

    ``lam`` is relative to ||A^H A|| <= 1 (unit-RSS maps, 0/1 mask), so it is independent of the data scale.
    A slice with no calibration signal in its ACS region falls back to the zero-filled RSS.
    """
    device: torch.device | str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    iterations: int = 20
    lam: float = 1e-3
    tol: float = 1e-5
    name: str = field(default="cgsense", init=False)

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        def slice_method(slice_kspace, slice_mask):
            return self._slice(slice_kspace, slice_mask, meta)
        return reconstruct_by_slice(kspace, mask, meta, resolve_device(self.device), progress, slice_method)

    def _slice(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta) -> torch.Tensor:
        sens = estimate_sensitivities_from_acs(kspace, mask, meta.num_acs, meta.radial)
        if not sens.abs().amax() > 0:
            return _zero_filled_rss(kspace, self.batch_size)
        return torch.cat([self.solve(kspace[frames], mask[frames], sens).abs()
                          for frames in _frame_batches(len(kspace), self.batch_size)])

    def solve(self, kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
        """kspace (F, C, H, W), mask broadcastable to it (e.g. (F, 1, H, W)), maps (C, H, W) -> the complex
        images x (F, H, W) of (A^H A + lam I) x = A^H y."""
        operator = SenseOperator(sens=sens, mask=mask.to(kspace.dtype))
        return conjugate_gradient(lambda image: operator.normal(image) + self.lam * image,
                                  operator.adjoint(kspace), self.iterations, self.tol)
