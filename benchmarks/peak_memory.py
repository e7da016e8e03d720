"""Peak host memory of predict.py on the largest real shapes, against its --max-memory-gb bound.

    OMP_NUM_THREADS=1 python -m benchmarks.peak_memory --work build/peak_memory \
        [--shape 12 12 10 246 512] [--methods zerofilled cgsense] [--bounds 1.5 3 16]

Writes one 2024-layout Task-1 input of the given h5py shape (nt, nz, nc, ny, nx) as MATLAB v7.3 stores it
(compound real/imag float32, one chunk per frame and slice), then runs ``python predict.py --method M
--device cpu --max-memory-gb B`` for every method and bound in its own process and prints, per run, the
process's maximum resident set (wait4's ru_maxrss), the wall time, the exit status and how many slabs the run
read (peak RSS from ``/usr/bin/time -f %M``). The default shape is the 2024 cine_sax of the format doc (12 frames, 12 slices, 10 coils, 246 x 512).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from challenge import masks, matio

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHAPE = (12, 12, 10, 246, 512)


def write_large_input(root: Path, shape: tuple[int, ...], rate: int = 4, seed: int = 0) -> Path:
    """A Uniform{rate} cine_sax input (+ mask) of ``shape`` under root, written a slice at a time."""
    nt, nz, nc, ny, nx = shape
    folder = root / "Cine" / "TestSet"
    path = folder / "UnderSample_Task1" / "P001" / f"cine_sax_kus_Uniform{rate}.mat"
    mask_path = folder / "Mask_Task1" / "P001" / f"cine_sax_mask_Uniform{rate}.mat"
    if path.is_file() and mask_path.is_file():
        with h5py.File(path, "r") as handle:
            if handle["kus"].shape == tuple(shape):
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = masks.make_mask("Uniform", 1, ny, nx, rate, 16, np.random.default_rng(seed))[0]
    rng = np.random.default_rng(seed)
    compound = np.dtype([("real", "<f4"), ("imag", "<f4")])
    with h5py.File(path, "w", userblock_size=512) as handle:
        data = handle.create_dataset("kus", shape=shape, dtype=compound, chunks=(1, 1, nc, ny, nx))
        for z in range(nz):
            # coil images of a smooth blob, undersampled: real k-space statistics are not needed to measure memory
            k = (rng.standard_normal((nt, nc, ny, nx), np.float32)
                 + 1j * rng.standard_normal((nt, nc, ny, nx), np.float32)).astype(np.complex64)
            k *= np.exp(-((np.arange(ny)[:, None] - ny / 2) ** 2 / (ny / 6) ** 2
                          + (np.arange(nx)[None, :] - nx / 2) ** 2 / (nx / 6) ** 2)).astype(np.float32)
            k *= mask
            data[:, z] = k.view(np.float32).reshape(nt, nc, ny, nx, 2).view(compound)[..., 0]
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    matio.write_mask_v73(mask_path, "mask", mask.astype(np.float64))
    return path


def measure(tree: Path, output: Path, method: str, bound_gb: float) -> dict:
    """One predict.py run in its own process under /usr/bin/time, whose %M is the run's peak RSS (wait4 here
    would report at least this process's own high-water mark, inherited through fork)."""
    command = [sys.executable, str(REPO / "predict.py"), "--input", str(tree), "--output", str(output),
               "--method", method, "--device", "cpu", "--max-memory-gb", str(bound_gb)]
    rss_path = output.with_name(output.name + ".maxrss")
    started = time.monotonic()
    finished = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", str(rss_path), *command], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text = finished.stdout
    wall = time.monotonic() - started
    slabs = re.search(r"reading (\d+) slabs", text)
    report = output / "run_report.json"
    valid = json.loads(report.read_text())["files_valid"] if report.is_file() else None
    return {"method": method, "bound_gb": bound_gb, "peak_rss_gb": int(rss_path.read_text().split()[-1]) / 2 ** 20,
            "wall_s": wall, "exit": finished.returncode, "slabs": int(slabs[1]) if slabs else 1, "valid": valid,
            "tail": text[-600:]}


_SLICE_PROBE = """
import sys, numpy as np
from model.reconstruction import VolumeMeta, build_reconstructor
from challenge import masks
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
nt, nc, ny, nx = (int(v) for v in sys.argv[2:6])
rng = np.random.default_rng(0)
kspace = (rng.standard_normal((nt, 1, nc, ny, nx), np.float32)
          + 1j * rng.standard_normal((nt, 1, nc, ny, nx), np.float32)).astype(np.complex64)
mask = np.broadcast_to(masks.make_mask('Uniform', 1, ny, nx, 4, 16, rng)[0], (nt, ny, nx))
kspace *= mask[:, None, None]
reconstructor = build_reconstructor(sys.argv[1], device='cpu')
before = status('VmRSS')
reconstructor.reconstruct(kspace, mask, VolumeMeta(num_acs=16, radial=False, cyclic=True, name='probe'))
print(before, status('VmHWM'), kspace.nbytes)
"""


def slice_working_memory(method: str, shape: tuple[int, ...]) -> dict:
    """A reconstructor's working memory for one slice of ``shape`` (nt, nz, nc, ny, nx), in a fresh process:
    (VmHWM after one slice - VmRSS before it) / the slice's k-space bytes (challenge.memory.SLICE_COPIES)."""
    nt, _, nc, ny, nx = shape
    finished = subprocess.run([sys.executable, "-c", _SLICE_PROBE, method, str(nt), str(nc), str(ny), str(nx)],
                              cwd=REPO, capture_output=True, text=True, check=True)
    before, peak, slice_bytes = (int(v) for v in finished.stdout.split()[-3:])
    return {"method": method, "slice_gib": slice_bytes / 2 ** 30, "rss_before_gib": before / 2 ** 30,
            "peak_gib": peak / 2 ** 30, "copies": (peak - before) / slice_bytes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "build" / "peak_memory")
    parser.add_argument("--shape", type=int, nargs=5, default=DEFAULT_SHAPE)
    parser.add_argument("--methods", nargs="+", default=["zerofilled", "cgsense"])
    parser.add_argument("--bounds", type=float, nargs="+", default=[1.5, 3.0, 16.0])
    parser.add_argument("--slice-only", action="store_true",
                        help="only each method's working memory for one slice (no input file, no predict.py)")
    args = parser.parse_args(argv)
    shape = tuple(args.shape)
    if args.slice_only:
        print("| method | one slice of k-space (GiB) | RSS before (GiB) | peak (GiB) | working copies of the slice |\n"
              "|---|---|---|---|---|")
        for method in args.methods:
            row = slice_working_memory(method, shape)
            print(f"| {method} | {row['slice_gib']:.3f} | {row['rss_before_gib']:.2f} | {row['peak_gib']:.2f} | "
                  f"{row['copies']:.1f} |", flush=True)
        return 0
    tree = args.work / "input"
    path = write_large_input(tree, shape)
    gib = np.prod(shape) * 8 / 2 ** 30
    print(f"# {datetime.date.today()} {platform.node()} {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}; input {path.name} {shape} = {gib:.2f} GiB of k-space", flush=True)
    print("| method | bound (GiB) | peak RSS (GiB) | slabs | wall (s) | exit | valid |\n|---|---|---|---|---|---|---|",
          flush=True)
    failed = False
    for method in args.methods:
        for bound in args.bounds:
            row = measure(tree, args.work / f"out-{method}-{bound}", method, bound)
            print(f"| {method} | {bound:g} | {row['peak_rss_gb']:.2f} | {row['slabs']} | {row['wall_s']:.0f} | "
                  f"{row['exit']} | {row['valid']} |", flush=True)
            if row["exit"] != 0 or row["peak_rss_gb"] > bound:
                failed = True
                print(row["tail"], file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
