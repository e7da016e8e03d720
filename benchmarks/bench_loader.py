"""Training-loader throughput on a release-sized tree: samples/s and peak RSS with 0, 1 and 2 worker processes,
against the samples/s one GPU step of the `paper` and of the shipped configuration consumes.

`python -m benchmarks.bench_loader [--tree build/bench-loader] [--files 17] [--samples 200] [--gpu-tflops 30]
                                   [--grouped 4] [--out docs/benchmarks.md]`

The tree (2025 layout, MATLAB v7.3 files of the real cine_sax shape 12 x 10 x 10 x 246 x 512 complex64, 1.2 GB
each, random k-space; 17 files = 20.6 GB) is written once under build/ and reused. A GPU step's consumption is
its FLOPs (3 x the forward's: the backward costs about twice the forward; discriminator and FFTs not counted)
at the stated rate.
"""
import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch

from benchmarks.bench_predict import replace_section
from model.config import preset
from model.generator import flops_per_output_slice
from training.config import PRESETS
from training.dataset import WindowSampler
from training.layouts import find_training_files
from training.loader import epoch_loader
from training.slice_index import build_index

SHAPE = (12, 10, 10, 246, 512)          # (nt, nz, nc, ny, nx): a 2024 cine_sax (cmrxrecon-format.md §2.3)
COMPLEX = np.dtype([("real", "<f4"), ("imag", "<f4")])
BEGIN, END = "<!-- bench_loader:begin -->", "<!-- bench_loader:end -->"
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: bench_loader HDF5 schema 1.00 ."


def write_file(path: Path, rng: np.random.Generator) -> None:
    """One v7.3 file as MATLAB writes it (512-byte header, compound real/imag), written a slice at a time; the
    slices are one random block times a random complex factor each (drawing 30 M normals per slice would make
    writing 20 GB CPU-bound; the reader's work does not depend on the values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    base = (rng.standard_normal((SHAPE[0],) + SHAPE[2:], np.float32)
            + 1j * rng.standard_normal((SHAPE[0],) + SHAPE[2:], np.float32)).astype(np.complex64)
    with h5py.File(tmp, "w", userblock_size=512) as handle:
        data = handle.create_dataset("kspace", shape=SHAPE, dtype=COMPLEX)
        for z in range(SHAPE[1]):
            factor = np.complex64(rng.standard_normal() + 1j * rng.standard_normal())
            data[:, z] = (base * factor).view(COMPLEX)
    with open(tmp, "r+b") as handle:
        handle.write(MATLAB_HEADER.ljust(116) + b"\0" * 8 + b"\x00\x02IM")
    os.replace(tmp, path)


def ensure_tree(root: Path, files: int) -> Path:
    """The release-sized tree, written once (a marker records what was written)."""
    marker = root / "complete.json"
    spec = {"shape": list(SHAPE), "files": files}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return root
    rng = np.random.default_rng(0)
    for i in range(files):
        path = (root / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample" / f"Center00{1 + i % 3}" / "Vendor"
                / f"P{i + 1:03d}" / "cine_sax.mat")
        if not path.exists():
            print(f"writing {path}", flush=True)
            write_file(path, rng)
    marker.write_text(json.dumps(spec))
    return root


def peak_rss_gib(pid: int | str = "self") -> float:
    """VmHWM of a process (its peak resident memory)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:                                      # exited meanwhile
        return 0.0
    return next((int(line.split()[1]) / 2**20 for line in lines if line.startswith("VmHWM:")), 0.0)


def children() -> list[int]:
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.append(int(stat.parent.name))
    return found


def measure(sampler: WindowSampler, workers: int, samples: int, windows_per_read: int = 1) -> dict:
    """samples/s after the first sample arrives, and the peak RSS of this process and of each worker."""
    sampler.windows_per_read, sampler._held = windows_per_read, None
    Path("/proc/self/clear_refs").write_text("5")          # restart this process's VmHWM
    loader = epoch_loader(sampler, (8, 16, 24), samples, seed=0, rank=0, epoch=workers, workers=workers)
    started = time.perf_counter()
    first, worker_peaks = None, {}
    for _ in loader:
        if first is None:
            first = time.perf_counter()
        # polled at every sample: a worker that has drawn its share exits before the last sample arrives
        for pid in children() if workers else ():
            worker_peaks[pid] = max(worker_peaks.get(pid, 0.0), peak_rss_gib(pid))
    done = time.perf_counter()
    return {"workers": workers, "windows_per_read": windows_per_read, "samples": samples,
            "first_s": first - started,
            "samples_per_s": (samples - 1) / (done - first), "trainer_gib": peak_rss_gib(),
            "worker_gib": list(worker_peaks.values())}


def gpu_consumption(gpu_tflops: float) -> dict[str, float]:
    """Samples/s one GPU step consumes for `paper` and the shipped configuration, at the real slice size."""
    nt, _, nc, ny, nx = SHAPE
    rates = {}
    for name in ("paper", "cpu"):
        model = PRESETS[name].model
        flops = 3 * flops_per_output_slice(preset(model), nc, ny, nx)
        rates[name] = {"model": model, "tflop_per_step": flops / 1e12, "samples_per_s": gpu_tflops * 1e12 / flops}
    return rates


def report(args, results: list[dict], rates: dict, tree_bytes: int, load: tuple[float, float]) -> str:
    per_worker = next(r for r in results if r["workers"] == 1 and r["windows_per_read"] == 1)["samples_per_s"]
    two = next(r for r in results if r["workers"] == 2 and r["windows_per_read"] == 1)["samples_per_s"]
    grouped = [r for r in results if r["windows_per_read"] > 1]
    lines = [
        BEGIN, "## Training loader (benchmarks/bench_loader.py)", "",
        f"- Command: `python -m benchmarks.bench_loader --files {args.files} --samples {args.samples} "
        f"--gpu-tflops {args.gpu_tflops:g} --grouped {args.grouped} --out docs/benchmarks.md`",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, shared with other "
        f"jobs (1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end); "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM; torch {torch.__version__}",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}",
        f"- Tree: {args.files} MATLAB v7.3 files of {SHAPE} complex64 (random k-space, 2025 layout), "
        f"{tree_bytes / 1e9:.1f} GB on disk, under {args.tree}; larger than the page cache can hold, so reads "
        "partly come from disk",
        "- A sample: one slice read as a hyperslab (12 frames x 10 coils x 246 x 512, 121 MB), a drawn mask "
        "(ktUniform/ktGaussian/ktRadial, AF 8/16/24), the 5-frame window, the view-shared k-space, the target "
        "and the slice's peak",
        "", "| workers | windows per read | samples | first sample (s) | samples/s | trainer peak RSS (GiB) | "
        "worker peak RSS (GiB) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        workers = ", ".join(f"{g:.2f}" for g in r["worker_gib"]) or "-"
        lines.append(f"| {r['workers']} | {r['windows_per_read']} | {r['samples']} | {r['first_s']:.1f} | "
                     f"{r['samples_per_s']:.2f} | "
                     f"{r['trainer_gib']:.2f} | {workers} |")
    lines += ["", f"One GPU step at an effective {args.gpu_tflops:g} TFLOP/s (3 x the forward's FLOPs at 10 coils, "
              "246 x 512; torch FlopCounterMode, convolutions and matmuls):", "",
              "| configuration | model | TFLOP / step | samples/s consumed | workers needed at the 1-worker rate |",
              "|---|---|---|---|---|"]
    for name, rate in rates.items():
        label = "paper" if name == "paper" else "shipped (preset cpu)"
        lines.append(f"| {label} | {rate['model']} | {rate['tflop_per_step']:.3f} | {rate['samples_per_s']:.1f} | "
                     f"{math.ceil(rate['samples_per_s'] / per_worker)} |")
    shipped = rates["cpu"]["samples_per_s"]
    lines += ["", f"- 2 workers deliver {two:.2f} samples/s: "
              + ("enough" if two >= shipped else "not enough")
              + f" for the shipped configuration ({shipped:.1f}/s) on this machine; the paper configuration needs "
              f"{math.ceil(rates['paper']['samples_per_s'] / per_worker)} workers at this machine's per-worker rate."]
    lines += [f"- {r['workers']} workers, {r['windows_per_read']} windows per slice read (`--windows-per-read`): "
              f"{r['samples_per_s']:.2f} samples/s" for r in grouped]
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_loader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path("build/bench-loader"))
    parser.add_argument("--files", type=int, default=17)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--grouped", type=int, default=4,
                        help="also measure 2 workers with this many windows per slice read (1: not)")
    parser.add_argument("--gpu-tflops", type=float, default=30.0, help="the effective GPU rate assumed")
    parser.add_argument("--out", type=Path, help="markdown file whose bench_loader section is replaced")
    args = parser.parse_args(argv)
    root = ensure_tree(args.tree, args.files)
    files, reader = build_index(find_training_files(root), args.tree / "data_index.json")
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform", "ktGaussian", "ktRadial"),
                            num_acs=16, reader=reader)
    tree_bytes = sum(f.path.stat().st_size for f in files)
    rates = gpu_consumption(args.gpu_tflops)
    load_start = os.getloadavg()[0]
    results = []
    for workers in args.workers:
        results.append(measure(sampler, workers, args.samples))
        print(json.dumps(results[-1]), flush=True)
    if args.grouped > 1:
        results.append(measure(sampler, 2, args.samples, args.grouped))
        print(json.dumps(results[-1]), flush=True)
    text = report(args, results, rates, tree_bytes, (load_start, os.getloadavg()[0]))
    print(text)
    if args.out:
        old = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(old, text, BEGIN, END))
    return 0


if __name__ == "__main__":
    sys.exit(main())
