"""What a run starts from: its options, the device, the shard, the output root.

Each check raises RunSetupError with one line that names the value and why it is unusable (predict.py exits 2),
before any file is touched.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from challenge import memory
from model.reconstruction import DEFAULT_BATCH_SIZE, DEFAULT_ENSEMBLE, DEFAULT_HARD_DC, DEFAULT_WEIGHTS


class RunSetupError(Exception):
    """The run cannot start (roots unusable, device unknown or absent, malformed shard environment)."""


@dataclass
class RunOptions:
    input_root: Path
    output_root: Path
    method: str = "genre"                       # genre | cgsense | zerofilled
    weights: Path = DEFAULT_WEIGHTS
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE        # frames per forward pass; halved on CUDA out-of-memory
    amp: bool = False
    ensemble: int = DEFAULT_ENSEMBLE            # GENRE reflections averaged per window (model.reflection)
    adapt_steps: int = 0                        # GENRE test-time adaptation steps per volume (0: off)
    adapt_seconds: float = 120.0                # and its wall-time budget per volume
    hard_dc: bool = DEFAULT_HARD_DC             # GENRE: put the measured k-space back into each output
    shard: tuple[int, int] | None = None        # (K, N): jobs i with i % N == K; None: RANK/WORLD_SIZE under torchrun, else (0, 1)
    resume: bool = False
    crop: bool = False                          # validation-phase run4Ranking crop
    max_memory_bytes: int = memory.DEFAULT_MAX_MEMORY_BYTES  # the process's peak host memory (challenge.memory)
    max_slab_bytes: int | None = None           # also cap each slab's k-space at this (tests; None: no cap)


# torchrun (torch.distributed.run) sets these beside RANK/WORLD_SIZE; a bare RANK/WORLD_SIZE left in an
# environment by something else must not silently make this process reconstruct a fraction of the tree.
TORCHRUN_MARKERS = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID")


def check_device(device: str) -> str:
    """'auto', 'cpu', 'cuda' or 'cuda:N' that exists here; anything else is a RunSetupError."""
    if device == "auto":
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise RunSetupError(f"--device {device!r} is not a device ({error}); use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cpu":
        return device
    if parsed.type != "cuda":
        raise RunSetupError(f"--device {device!r}: only auto, cpu, cuda and cuda:N are supported")
    if not torch.cuda.is_available():
        raise RunSetupError(f"--device {device!r} asked for CUDA, but no CUDA device is available "
                            f"(use --device cpu or auto)")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise RunSetupError(f"--device {device!r}: only {count} CUDA device(s) here")
    return device


def _environment_int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise RunSetupError(f"environment variable {name}={text!r} is not an integer") from None


def shard_from_environment(env: Mapping[str, str] | None = None) -> tuple[tuple[int, int], str | None]:
    """((RANK, WORLD_SIZE), note) under torchrun, else ((0, 1), note or None).

    Malformed RANK or WORLD_SIZE are a RunSetupError wherever they come from; well-formed ones are honoured
    only under torchrun (see TORCHRUN_MARKERS); otherwise they are ignored and the note says so.
    """
    env = os.environ if env is None else env
    rank, world_size = _environment_int(env, "RANK"), _environment_int(env, "WORLD_SIZE")
    if rank is None and world_size is None:
        return (0, 1), None
    if world_size is not None and world_size < 1:
        raise RunSetupError(f"environment variable WORLD_SIZE={world_size} must be >= 1")
    if rank is not None and (rank < 0 or (world_size is not None and rank >= world_size)):
        raise RunSetupError(f"environment variable RANK={rank} needs 0 <= RANK < WORLD_SIZE={world_size}")
    under_torchrun = any(marker in env for marker in TORCHRUN_MARKERS)
    if not under_torchrun:
        if (world_size or 1) > 1:
            return (0, 1), (f"RANK={env.get('RANK')} WORLD_SIZE={env.get('WORLD_SIZE')} in the environment ignored: "
                            f"not launched by torchrun (no {' or '.join(TORCHRUN_MARKERS)}); use --shard K/N "
                            f"to reconstruct a part of the tree")
        return (0, 1), None
    if world_size is None or rank is None:
        raise RunSetupError(f"under torchrun both RANK and WORLD_SIZE are needed (RANK={env.get('RANK')!r}, "
                            f"WORLD_SIZE={env.get('WORLD_SIZE')!r})")
    return ((rank, world_size) if world_size > 1 else (0, 1)), None


def check_shard(shard: tuple[int, int]) -> None:
    """(K, N) with 0 <= K < N, else RunSetupError."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise RunSetupError(f"invalid shard {index}/{count}: need 0 <= K < N")


def prepare_output_root(input_root: Path, output_root: Path) -> None:
    """Create the output root and prove that it is writable; it must not lie inside the input root."""
    if not input_root.is_dir():
        raise RunSetupError(f"input root {input_root} is not a directory")
    resolved_input, resolved_output = input_root.resolve(), output_root.resolve()
    if resolved_output == resolved_input or resolved_input in resolved_output.parents:
        raise RunSetupError(f"output root {output_root} lies inside the input root {input_root}; "
                            f"nothing may be written under the input root")
    try:
        output_root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_root, prefix=".write-test-", suffix=".tmp"):
            pass
    except OSError as error:
        raise RunSetupError(f"output root {output_root} is not writable: {error}") from error
