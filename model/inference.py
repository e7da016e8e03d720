"""GENRE-CMR inference: the Reconstructor of model.reconstruction backed by a trained generator checkpoint.

Per slice, every target frame gets its adjacent-frame window (model.window) and, for view-sharing
configurations, the slice's time-averaged k-space (model.view_sharing); windows are batched
``batch_size`` at a time, normalised by model.normalisation.kspace_scale and the output multiplied back.
With a reflection ensemble (model.reflection) each window is also reconstructed from reflected inputs, each
image reflected back, and the magnitudes averaged. With ``hard_dc`` each pass's image puts the measured k-space
back first (model.generator.hard_consistent_centre).
"""
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from model.adaptation import AdaptConfig, AdaptResult, Window, WindowSource, adapt_generator
from model.checkpoint import load_generator
from model.generator import GeneratorOutput, hard_consistent_centre
from model.interface import VolumeMeta, check_inputs
from model.normalisation import kspace_scale
from model.reflection import ENSEMBLES, reflect
from model.view_sharing import shared_kspace
from model.window import adjacent_frames


def reflection_pass(generator, masked_kspace: torch.Tensor, mask: torch.Tensor, num_acs: int, radial: bool,
                    shared: torch.Tensor | None, dims: tuple[int, ...], amp: bool = False
                    ) -> tuple[GeneratorOutput, torch.Tensor, torch.Tensor]:
    """One pass of a reflection ensemble: ``generator`` on its window inputs (masked k-space (B, F, C, H, W), mask
    (B, F, 1, H, W), view-shared k-space or None) reflected along ``dims`` (model.reflection). Returns (output,
    reflected k-space, reflected mask); the caller reflects the output's image back with ``reflect(image, dims)``."""
    kspace, mask = reflect(masked_kspace, dims), reflect(mask, dims)
    shared = None if shared is None else reflect(shared, dims)
    with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        return generator(kspace, mask, num_acs, radial, shared), kspace, mask


class GenreReconstructor:
    name = "genre"

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu", batch_size: int = 8,
                 amp: bool = False, ensemble: int = 1, adapt: AdaptConfig | None = None, hard_dc: bool = False):
        """Loads ``weights`` (raises model.checkpoint.WeightsError, a WeightsUnavailable). ``amp``: fp16
        autocast for the networks, on cuda only; physics stays fp32. ``ensemble``: reflections averaged per
        window, a key of model.reflection.ENSEMBLES (each costs one more forward pass). ``adapt``: fine-tune a
        copy of the generator on each file's own measurements first (model.adaptation). ``hard_dc``: each output
        takes the measured k-space where it was sampled (model.data_consistency.hard_consistent_image)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {sorted(ENSEMBLES)}, got {ensemble}")
        self.reflections = ENSEMBLES[ensemble]
        self.device = torch.device(device)
        self.generator, self.record = load_generator(weights, self.device)
        self.batch_size = batch_size
        self.amp = amp and self.device.type == "cuda"
        self.adapt = adapt
        self.hard_dc = hard_dc
        self.last_adaptation: AdaptResult | None = None

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        """kspace (nt, nz, nc, ny, nx) complex64, mask (nt, ny, nx) bool -> (nt, nz, ny, nx) float32."""
        mask = check_inputs(kspace, mask, meta)
        nt, nz, _, ny, nx = kspace.shape
        output = np.empty((nt, nz, ny, nx), dtype=np.float32)
        mask_t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(self.device)
        generator = self.generator
        if self.adapt is not None:
            generator, self.last_adaptation = adapt_generator(
                self.generator, self._window_source(kspace, mask_t, meta), mask_t, nz, meta.num_acs, meta.radial,
                self.adapt)
        for z in range(nz):
            slice_kspace = torch.from_numpy(np.ascontiguousarray(kspace[:, z], dtype=np.complex64)).to(self.device)
            output[:, z] = self._reconstruct_slice(slice_kspace, mask_t, meta, generator=generator)
            if progress is not None:
                progress(1)
        return output

    def reconstruct_frames(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta, frames: list[int]
                           ) -> np.ndarray:
        """One slice's chosen frames: kspace (nt, nc, ny, nx) complex64, mask (nt, ny, nx) -> (len(frames), ny, nx),
        exactly as ``reconstruct`` computes them (evaluation on a few windows of a long series)."""
        mask = check_inputs(kspace[:, None], mask, meta)
        kspace_t = torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)).to(self.device)
        mask_t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(self.device)
        generator = self.generator
        if self.adapt is not None:
            generator, self.last_adaptation = adapt_generator(
                self.generator, self._window_source(kspace[:, None], mask_t, meta), mask_t, 1, meta.num_acs,
                meta.radial, self.adapt)
        return self._reconstruct_slice(kspace_t, mask_t, meta, frames, generator=generator)

    def _window_source(self, kspace: np.ndarray, mask: torch.Tensor, meta: VolumeMeta) -> WindowSource:
        """model.adaptation.WindowSource over a volume (nt, nz, nc, ny, nx) measured under ``mask`` (nt, ny, nx):
        windows built as _run_frames builds them from any input mask within it, scaled by their zero-filled
        maximum."""
        size = self.generator.config.adjacent_frames

        def window(z: int, t: int, input_mask: torch.Tensor) -> Window:
            slice_kspace = torch.from_numpy(np.ascontiguousarray(kspace[:, z], dtype=np.complex64)).to(self.device)
            masked = slice_kspace * input_mask[:, None]
            frames = torch.tensor(adjacent_frames(t, kspace.shape[0], size, meta.cyclic), device=self.device)
            window_kspace = masked[frames][None]
            scale = kspace_scale(window_kspace).reshape(())
            return Window(kspace=window_kspace / scale, mask=input_mask[frames][None, :, None],
                          slice_kspace=masked / scale, slice_mask=input_mask, centre=t,
                          measured=slice_kspace[t] * mask[t] / scale)
        return window

    def _reconstruct_slice(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta,
                           frames: list[int] | None = None, generator=None) -> np.ndarray:
        """kspace (nt, nc, ny, nx), mask (nt, ny, nx) -> (nt or len(frames), ny, nx), ``self.batch_size`` windows
        per forward pass. Running out of memory is the caller's to handle: a run halves ``batch_size`` and
        retries (challenge.fallback's out-of-memory policy)."""
        return self._run_frames(kspace, mask, meta, self.batch_size, frames, generator or self.generator)

    @torch.inference_mode()
    def _run_frames(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta, batch_size: int,
                    frames: list[int] | None, generator) -> np.ndarray:
        nt = kspace.shape[0]
        targets = list(range(nt)) if frames is None else list(frames)
        size = generator.config.adjacent_frames
        masked = kspace * mask[:, None]
        shared = shared_kspace(masked, mask)[None] if generator.config.view_sharing else None
        images = []
        for start in range(0, len(targets), batch_size):
            windows = torch.tensor([adjacent_frames(t, nt, size, meta.cyclic)
                                    for t in targets[start:start + batch_size]], device=kspace.device)
            window_kspace = masked[windows]                  # (B, F, C, H, W)
            window_mask = mask[windows][:, :, None]           # (B, F, 1, H, W)
            scale = kspace_scale(window_kspace)               # (B,)
            window_shared = None if shared is None else shared / scale[:, None, None, None]
            window_kspace = window_kspace / scale[:, None, None, None, None]
            image = 0
            for dims in self.reflections:
                result, reflected_kspace, reflected_mask = reflection_pass(
                    generator, window_kspace, window_mask, meta.num_acs, meta.radial, window_shared, dims, self.amp)
                frame = (hard_consistent_centre(result, reflected_kspace, reflected_mask) if self.hard_dc
                         else result.image)
                image = image + reflect(frame.float(), dims)
            images.append(image / len(self.reflections) * scale[:, None, None])
        return torch.cat(images).cpu().numpy()
