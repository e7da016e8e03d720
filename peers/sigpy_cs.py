"""Classical compressed sensing from the authors' ``sigpy`` package: ESPIRiT coil maps (sigpy.mri.app.EspiritCalib)
and L1-wavelet regularised SENSE (sigpy.mri.app.L1WaveletRecon), one frame at a time, on the CPU.

The maps of a slice come from its ACS k-space averaged over the frames that sampled it (k-t masks carry the ACS
in every frame; averaging lowers the noise), with SigPy's defaults (6 x 6 kernels, threshold 0.02, crop 0.95)
and a calibration square of ``num_acs`` (EspiritCalib's region is square). Each frame is divided by its
zero-filled RSS maximum, so that ``LAMBDA`` does not depend on the data's scale, solved with SigPy's defaults
(Daubechies-4 wavelets, 100 proximal-gradient iterations; step 1, the bound its power iteration would estimate)
and multiplied back. ``LAMBDA`` was chosen on training windows (python -m peers.tune_cs, docs/peers.md).
A slice without calibration signal gets the zero-filled RSS. SigPy's arrays are numpy's (cupy for a GPU, which
the project does not install): this peer runs on the CPU whatever --device says.
"""
import numpy as np
import sigpy.mri
import torch

from model.acs import acs_region
from model.coils import rss
from model.fftc import ifft2c
from model.reconstruction import VolumeMeta
from peers.base import SliceReconstructor

NAME = "sigpy-cs"
# L1 weight on the wavelet coefficients of an image scaled to zero-filled maximum 1 (see peers/tune_cs.py)
LAMBDA = 0.005
MAX_ITER = 100                  # L1WaveletRecon's default


def espirit_maps(kspace: np.ndarray, mask: np.ndarray, num_acs: int, radial: bool) -> np.ndarray:
    """kspace (nt, nc, ny, nx) complex, mask (nt, ny, nx) bool -> ESPIRiT maps (nc, ny, nx) complex64; all
    zero when the ACS region holds no signal."""
    region = acs_region(kspace.shape[-2], kspace.shape[-1], num_acs, radial).numpy()
    sampled = mask & region                                                   # (nt, ny, nx)
    counts = sampled.sum(axis=0)
    acs = (kspace * sampled[:, None]).sum(axis=0) / np.maximum(counts, 1)     # (nc, ny, nx)
    if not np.abs(acs).max() > 0:
        return np.zeros(kspace.shape[1:], np.complex64)
    maps = sigpy.mri.app.EspiritCalib(acs.astype(np.complex64), calib_width=num_acs, show_pbar=False).run()
    return np.asarray(maps, dtype=np.complex64)


def zero_filled(kspace: np.ndarray) -> np.ndarray:
    """kspace (..., nc, ny, nx) -> zero-filled RSS (..., ny, nx) float32 (model.fftc's centred FFT)."""
    return rss(ifft2c(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)))).numpy()


def cs_frame(kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray, lamda: float = LAMBDA,
             max_iter: int = MAX_ITER) -> np.ndarray:
    """One frame: kspace (nc, ny, nx), mask (ny, nx) bool, maps (nc, ny, nx) -> |x| (ny, nx) float32."""
    measured = (kspace * mask).astype(np.complex64)
    scale = float(zero_filled(measured).max()) or 1.0
    # step 1: unit-RSS maps and a 0/1 mask bound ||A^H A|| by 1 (SigPy would spend 30 power iterations on it)
    image = sigpy.mri.app.L1WaveletRecon(measured / scale, maps, lamda, weights=mask.astype(np.float32),
                                         max_iter=max_iter, alpha=1.0, show_pbar=False).run()
    return (np.abs(np.asarray(image)) * scale).astype(np.float32)


class SigpyCS(SliceReconstructor):
    name = NAME

    def __init__(self, device="cpu", batch_size: int = 8, lamda: float = LAMBDA, max_iter: int = MAX_ITER):
        super().__init__("cpu", batch_size)
        self.lamda, self.max_iter = lamda, max_iter

    def reconstruct_slice(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta,
                          frames: list[int]) -> torch.Tensor:
        kspace_np = kspace.cpu().numpy()
        mask_np = mask[:, 0].cpu().numpy().astype(bool)
        maps = espirit_maps(kspace_np, mask_np, meta.num_acs, meta.radial)
        image = np.zeros((kspace_np.shape[0], *kspace_np.shape[-2:]), np.float32)
        for t in frames:
            if maps.any():
                image[t] = cs_frame(kspace_np[t], mask_np[t], maps, self.lamda, self.max_iter)
            else:
                image[t] = zero_filled(kspace_np[t] * mask_np[t])
        return torch.from_numpy(image)


def build(weights=None, device="cpu", batch_size: int = 8) -> SigpyCS:
    return SigpyCS(device, batch_size, lamda=LAMBDA, max_iter=MAX_ITER)
