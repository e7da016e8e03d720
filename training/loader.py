"""Parallel window loading: a torch DataLoader over a sampler (training.dataset.WindowSampler or
training.simulated.SimulatedSampler), with worker processes, pinned memory on CUDA, and random streams seeded
per (seed, rank, epoch, worker) so that a run reproduces for the same number of ranks and workers and every
DDP rank draws its own windows.
"""
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from training.dataset import Sample


def stream_seed(seed: int, rank: int, epoch: int, worker: int) -> np.random.SeedSequence:
    """The seed of one worker's windows in one epoch of one rank (independent streams, spawn-style)."""
    return np.random.SeedSequence([seed, rank, epoch, worker])


def worker_share(steps: int, worker: int, workers: int) -> int:
    """How many of an epoch's ``steps`` windows worker ``worker`` of ``workers`` draws (round-robin order)."""
    return steps // workers + (worker < steps % workers)


class EpochWindows(IterableDataset):
    """The ``steps`` windows of one epoch of one rank; each worker draws its share from its own stream.

    The DataLoader takes one window from each worker in turn, so the order is fixed by the worker count."""

    def __init__(self, sampler, accelerations: tuple[int, ...], steps: int, seed: int, rank: int, epoch: int):
        self.sampler, self.accelerations, self.steps = sampler, tuple(accelerations), steps
        self.seed, self.rank, self.epoch = seed, rank, epoch

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = np.random.default_rng(stream_seed(self.seed, self.rank, self.epoch, worker))
        # a slice held from the previous epoch (windows_per_read > 1, in-process) would make this epoch's windows
        # depend on the last one's: a resumed run would then differ from a straight one
        release = getattr(self.sampler, "release_held", None)
        if release is not None:
            release()
        for _ in range(worker_share(self.steps, worker, workers)):
            yield self.sampler.draw(rng, self.accelerations)

    def __len__(self) -> int:
        return self.steps


def _keep(sample: Sample) -> Sample:
    """Samples cross from workers as they are (batch of 1 already)."""
    return sample


def epoch_loader(sampler, accelerations: tuple[int, ...], steps: int, seed: int, rank: int, epoch: int,
                 workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding one epoch's ``steps`` Samples; ``workers`` = 0 draws in this process."""
    dataset = EpochWindows(sampler, accelerations, steps, seed, rank, epoch)
    # a private generator: DataLoader's base seed must not consume the training process's torch RNG
    generator = torch.Generator().manual_seed(int(stream_seed(seed, rank, epoch, 1 << 31).generate_state(1)[0]))
    return DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_keep, pin_memory=pin_memory,
                      generator=generator, prefetch_factor=2 if workers else None)
