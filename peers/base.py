"""What every peer shares: predict.py's slice loop (model.classical.reconstruct_by_slice: validation, non-finite
samples to 0, k-space scaled to max |k| = 1 and back, progress) around a per-slice method, and the chosen-frames
entry point benchmarks.native_eval uses."""
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from model.classical import reconstruct_by_slice
from model.reconstruction import VolumeMeta, resolve_device
from peers.checkpoint import load_peer


class SliceReconstructor:
    """A Reconstructor from ``reconstruct_slice``; subclasses set ``name`` and implement that method."""
    name = "peer"

    def __init__(self, device="cpu", batch_size: int = 8):
        self.device = resolve_device(device)
        self.batch_size = batch_size            # frames per network call; the runner halves it on out-of-memory

    def reconstruct_slice(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta,
                          frames: list[int]) -> torch.Tensor:
        """kspace (nt, nc, ny, nx) complex64 of one slice, mask (nt, 1, ny, nx) bool -> (nt, ny, nx) real, the
        magnitude of ``frames`` (0 elsewhere)."""
        raise NotImplementedError

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        """kspace (nt, nz, nc, ny, nx) complex64, mask (nt, ny, nx) bool -> (nt, nz, ny, nx) float32."""
        every = list(range(kspace.shape[0]))
        return reconstruct_by_slice(kspace, mask, meta, self.device, progress,
                                    lambda k, m: self.reconstruct_slice(k, m, meta, every))

    def reconstruct_frames(self, kspace: np.ndarray, mask: np.ndarray, meta: VolumeMeta,
                           frames: list[int]) -> np.ndarray:
        """One slice's chosen frames: kspace (nt, nc, ny, nx), mask (nt, ny, nx) -> (len(frames), ny, nx), as
        ``reconstruct`` computes them (GenreReconstructor.reconstruct_frames' interface)."""
        image = reconstruct_by_slice(kspace[:, None], mask, meta, self.device, None,
                                     lambda k, m: self.reconstruct_slice(k, m, meta, list(frames)))
        return image[list(frames), 0]


class LearnedPeer(SliceReconstructor):
    """A trained peer network run on batches of frames; subclasses set ``name`` and implement ``new_network`` and
    ``frame_images``."""

    def __init__(self, weights: str | Path, device="cpu", batch_size: int = 8):
        super().__init__(device, batch_size)
        hparams, state_dict, self.record = load_peer(weights, self.name)
        self.network = self.new_network(hparams)
        self.network.load_state_dict(state_dict)
        self.network.to(self.device).eval()

    def new_network(self, hparams: dict) -> torch.nn.Module:
        raise NotImplementedError

    def frame_images(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta) -> torch.Tensor:
        """kspace (B, nc, ny, nx) complex64, mask (B, ny, nx) bool -> magnitudes (B, ny, nx)."""
        raise NotImplementedError

    @torch.inference_mode()
    def reconstruct_slice(self, kspace: torch.Tensor, mask: torch.Tensor, meta: VolumeMeta,
                          frames: list[int]) -> torch.Tensor:
        image = torch.zeros(kspace.shape[0], *kspace.shape[-2:], device=kspace.device)
        for start in range(0, len(frames), self.batch_size):
            chosen = frames[start:start + self.batch_size]
            image[chosen] = self.frame_images(kspace[chosen], mask[chosen, 0], meta)
        return image
