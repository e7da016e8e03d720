"""Training-loader throughput on a release-sized tree: samples/s and peak RSS with 0, 1 and 2 worker processes,
against the samples/s one GPU step of the `paper` and of the shipped configuration consumes.

`python -m benchmarks.bench_loader [--tree build/bench-loader] [--files 17] [--samples 200] [--gpu-tflops 30]
                                   [--grouped 4 12] [--measured-rates shipped=2.30 paper=1.17
                                   --rates-source "docs/gpu.md"] [--out docs/benchmarks.md]`

The tree (2025 layout, MATLAB v7.3 files of the real cine_sax shape 12 x 10 x 10 x 246 x 512 complex64, 1.2 GB
each, random k-space; 17 files = 20.6 GB) is written once under build/ and reused. A GPU step's consumption is
measured where ``--measured-rates`` gives it (`make gpu-check`'s rates check times real AMP training steps), else
estimated from its FLOPs (3 x the forward's: the backward costs about twice the forward; discriminator and FFTs
not counted) at the stated rate; on an H200 the estimate was 6-39x too high (docs/gpu.md).

Beside the loader runs it measures what bounds them: the disk (``dd iflag=direct`` of one tree file, no page
cache), the slice reads alone (hyperslabs of random slices, as the loader reads them) and the preparation alone
(one slice held in memory, the sample built from it in this process: the CPU time per sample). The process
takes the trainer's heap settings (model.allocator) first, as ``python -m training`` does; workers inherit them.
"""
import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch

from benchmarks.bench_predict import replace_section
from benchmarks.loader_rate import time_loader
from model.allocator import retain_freed_memory
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
    sampler.windows_per_read = windows_per_read        # each epoch's windows start from a new slice read
    Path("/proc/self/clear_refs").write_text("5")          # restart this process's VmHWM
    loader = epoch_loader(sampler, (8, 16, 24), samples, seed=0, rank=0, epoch=workers, workers=workers)
    worker_peaks: dict[int, float] = {}

    def poll() -> None:
        # at every sample: a worker that has drawn its share exits before the last sample arrives
        for pid in children() if workers else ():
            worker_peaks[pid] = max(worker_peaks.get(pid, 0.0), peak_rss_gib(pid))

    timed = time_loader(loader, poll)
    return {"workers": workers, "windows_per_read": windows_per_read, "samples": timed.windows,
            "first_s": timed.first_s, "samples_per_s": timed.windows_per_s, "trainer_gib": peak_rss_gib(),
            "worker_gib": list(worker_peaks.values())}


def disk_read_mb_s(path: Path) -> float:
    """MB/s of ``dd iflag=direct`` reading one file (the page cache bypassed); nan where dd cannot."""
    try:
        done = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=4M", "iflag=direct"], capture_output=True,
                              text=True, timeout=600)
        match = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", done.stderr, re.MULTILINE)
        return int(match[1]) / float(match[2]) / 1e6
    except (OSError, subprocess.SubprocessError, TypeError):
        return math.nan


def read_rate(sampler: WindowSampler, reads: int, rng: np.random.Generator) -> dict:
    """Slice reads alone: MB/s and s per read over ``reads`` random (file, slice) hyperslabs."""
    files = [f for fs in sampler.by_domain.values() for f in fs]
    started, nbytes = time.perf_counter(), 0
    for _ in range(reads):
        file = files[rng.integers(len(files))]
        nbytes += sampler.reader.read_slice(file.path, int(rng.integers(sampler.reader.shape(file.path)[1]))).nbytes
    seconds = time.perf_counter() - started
    return {"reads": reads, "mb_per_s": nbytes / seconds / 1e6, "s_per_read": seconds / reads}


def preparation_cpu(sampler: WindowSampler, samples: int, rng: np.random.Generator) -> dict:
    """The sample built from a slice already in memory, in this process: CPU seconds per sample (a new slice
    peak each time, as with one window per read) and per sample when the slice's peak is known (the other
    windows of a read)."""
    file = next(iter(sampler.by_domain.values()))[0]
    kspace = sampler.reader.read_slice(file.path, 0)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        costs = {}
        for label, fresh_peak in (("new_slice", True), ("same_slice", False)):
            started = time.process_time()
            for i in range(samples):
                if fresh_peak:
                    sampler._slice_peaks.clear()
                sampler.build(file, kspace, 0, int(rng.integers(kspace.shape[0])),
                              sampler.patterns[i % len(sampler.patterns)], 8, rng)
            costs[label] = (time.process_time() - started) / samples
    finally:
        torch.set_num_threads(torch_threads)
    return costs


def gpu_consumption(gpu_tflops: float, measured: dict[str, float] | None = None) -> dict[str, dict]:
    """Samples/s one GPU step consumes for `paper` and the shipped configuration (`cpu`): measured where
    ``measured`` gives a rate (docs/gpu.md's rates check), else from the FLOPs at the real slice size."""
    nt, _, nc, ny, nx = SHAPE
    rates = {}
    for name in ("paper", "cpu"):
        model = PRESETS[name].model
        flops = 3 * flops_per_output_slice(preset(model), nc, ny, nx)
        rate = (measured or {}).get(name)
        rates[name] = {"model": model, "tflop_per_step": flops / 1e12, "measured": rate is not None,
                       "samples_per_s": rate if rate is not None else gpu_tflops * 1e12 / flops}
    return rates


def parse_rates(items: list[str]) -> dict[str, float]:
    """["cpu=2.3", "paper=1.17"] -> {"cpu": 2.3, "paper": 1.17}; "shipped" names the cpu preset."""
    rates = {}
    for item in items:
        name, _, value = item.partition("=")
        name = "cpu" if name == "shipped" else name
        if name not in ("cpu", "paper") or not value:
            raise ValueError(f"--measured-rates: {item!r} is not shipped=RATE, cpu=RATE or paper=RATE")
        rates[name] = float(value)
    return rates


def report(args, results: list[dict], rates: dict, tree_bytes: int, load: tuple[float, float], bounds: dict
           ) -> str:
    per_worker = next(r for r in results if r["workers"] == 1 and r["windows_per_read"] == 1)["samples_per_s"]
    two = next(r for r in results if r["workers"] == 2 and r["windows_per_read"] == 1)["samples_per_s"]
    grouped = [r for r in results if r["windows_per_read"] > 1]
    slice_mb = math.prod(SHAPE[:1] + SHAPE[2:]) * 8 / 1e6
    prepare = bounds["prepare_cpu_s"]
    lines = [
        BEGIN, "## Training loader (benchmarks/bench_loader.py)", "",
        f"- Command: `python -m benchmarks.bench_loader --files {args.files} --samples {args.samples} "
        f"--gpu-tflops {args.gpu_tflops:g} --grouped {' '.join(map(str, args.grouped))}"
        + (f" --measured-rates {' '.join(args.measured_rates)} --rates-source {shlex.quote(args.rates_source)}"
           if args.measured_rates else "") + " --out docs/benchmarks.md`",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, shared with other "
        f"jobs (1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end); "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM; torch {torch.__version__}",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}",
        f"- Tree: {args.files} MATLAB v7.3 files of {SHAPE} complex64 (random k-space, 2025 layout, contiguous "
        f"datasets), {tree_bytes / 1e9:.1f} GB on disk, under {args.tree}; larger than the free page cache, so "
        "reads partly come from disk",
        f"- A sample: one slice read as a hyperslab (12 frames x 10 coils x 246 x 512, {slice_mb:.0f} MB), a drawn "
        "mask (ktUniform/ktGaussian/ktRadial, AF 8/16/24), the 5-frame window, the view-shared k-space, the target "
        "and the slice's peak; the process has the trainer's heap settings (model.allocator)",
        "", "What bounds it, measured alone:", "",
        f"- disk: `dd iflag=direct bs=4M` of one tree file: {bounds['disk_mb_s']:.0f} MB/s, i.e. "
        f"{bounds['disk_mb_s'] / slice_mb:.1f} slices/s",
        f"- slice reads (h5py hyperslabs of {bounds['reads']['reads']} random slices, page cache as it is): "
        f"{bounds['reads']['mb_per_s']:.0f} MB/s, {bounds['reads']['s_per_read']:.2f} s per slice",
        f"- preparation from a slice in memory, one thread: {prepare['new_slice']:.2f} CPU s per sample with a new "
        f"slice (its peak: 12 inverse FFTs of 10 coils), {prepare['same_slice']:.2f} CPU s when the slice's peak "
        "is known (the further windows of one read); about two thirds of it is inverse FFTs",
        "", "| workers | windows per read | samples | first sample (s) | samples/s | trainer peak RSS (GiB) | "
        "worker peak RSS (GiB) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        workers = ", ".join(f"{g:.2f}" for g in r["worker_gib"]) or "-"
        lines.append(f"| {r['workers']} | {r['windows_per_read']} | {r['samples']} | {r['first_s']:.1f} | "
                     f"{r['samples_per_s']:.2f} | {r['trainer_gib']:.2f} | {workers} |")
    measured = [name for name, rate in rates.items() if rate["measured"]]
    source = (f"measured where marked ({args.rates_source or 'given on the command line'}), else " if measured
              else "")
    lines += ["", f"One GPU step: {source}at an effective {args.gpu_tflops:g} TFLOP/s (3 x the forward's FLOPs at 10 "
              "coils, 246 x 512; torch FlopCounterMode, convolutions and matmuls):", "",
              "| configuration | model | TFLOP / step | samples/s consumed | workers needed at the 1-worker rate | "
              "cores needed at the in-memory preparation cost |", "|---|---|---|---|---|---|"]
    for name, rate in rates.items():
        label = "paper" if name == "paper" else "shipped (preset cpu)"
        consumed = f"{rate['samples_per_s']:.2f} (measured)" if rate["measured"] else f"{rate['samples_per_s']:.1f}"
        lines.append(f"| {label} | {rate['model']} | {rate['tflop_per_step']:.3f} | {consumed} | "
                     f"{math.ceil(rate['samples_per_s'] / per_worker)} | "
                     f"{math.ceil(rate['samples_per_s'] * prepare['new_slice'])} |")
    shipped = rates["cpu"]["samples_per_s"]
    paper = rates["paper"]["samples_per_s"]
    lines += ["", f"- 2 workers deliver {two:.2f} samples/s: "
              + ("enough" if two >= shipped else "not enough")
              + f" for the shipped configuration ({shipped:.2f}/s) on this machine; the paper configuration "
              f"({paper:.2f}/s) needs {math.ceil(paper / per_worker)} workers at this machine's per-worker rate."]
    lines += [f"- {r['workers']} workers, {r['windows_per_read']} windows per slice read (`--windows-per-read`): "
              f"{r['samples_per_s']:.2f} samples/s: "
              + ("enough" if r["samples_per_s"] >= shipped else "not enough") + " for the shipped configuration, "
              + ("enough" if r["samples_per_s"] >= paper else "not enough") + " for the paper one" for r in grouped]
    lines += [f"- Reading alone, one window per read, the disk gives at most {bounds['disk_mb_s'] / slice_mb:.1f} "
              f"samples/s uncached ({shipped * slice_mb / 1e3:.1f} GB/s would be needed for {shipped:.2f}/s); "
              f"preparing alone, 2 cores give at most {2 / prepare['new_slice']:.1f} samples/s "
              f"({2 / prepare['same_slice']:.1f} with the peak known).",
              "- Trainer peak RSS: this process ran the measurements alone and the in-process (0 workers) rows first, "
              "and model.allocator keeps freed memory mapped, so the worker rows carry its peak; a worker's peak "
              "includes the heap it kept."]
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_loader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path("build/bench-loader"))
    parser.add_argument("--files", type=int, default=17)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--grouped", type=int, nargs="+", default=[4],
                        help="also measure 2 workers with each of these windows per slice read (1: not)")
    parser.add_argument("--gpu-tflops", type=float, default=30.0, help="the effective GPU rate assumed")
    parser.add_argument("--measured-rates", nargs="+", default=[], metavar="CONFIG=RATE",
                        help="windows/s one GPU step consumes, measured (make gpu-check's rates check): "
                             "shipped=RATE paper=RATE; they replace the FLOP estimate")
    parser.add_argument("--rates-source", default="", help="where --measured-rates come from, for the report")
    parser.add_argument("--reads", type=int, default=20, help="random slice reads timed alone")
    parser.add_argument("--prepare-samples", type=int, default=6,
                        help="samples built from an in-memory slice to time the preparation alone")
    parser.add_argument("--out", type=Path, help="markdown file whose bench_loader section is replaced")
    args = parser.parse_args(argv)
    retain_freed_memory()                 # as python -m training does; forked workers inherit it
    root = ensure_tree(args.tree, args.files)
    files, reader = build_index(find_training_files(root), args.tree / "data_index.json")
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform", "ktGaussian", "ktRadial"),
                            num_acs=16, reader=reader)
    tree_bytes = sum(f.path.stat().st_size for f in files)
    rates = gpu_consumption(args.gpu_tflops, parse_rates(args.measured_rates))
    load_start = os.getloadavg()[0]
    bounds = {"disk_mb_s": disk_read_mb_s(files[-1].path),
              "reads": read_rate(sampler, args.reads, np.random.default_rng(1)),
              "prepare_cpu_s": preparation_cpu(sampler, args.prepare_samples, np.random.default_rng(2))}
    print(json.dumps(bounds), flush=True)
    results = []
    for workers in args.workers:
        results.append(measure(sampler, workers, args.samples))
        print(json.dumps(results[-1]), flush=True)
    for grouped in (g for g in args.grouped if g > 1):
        results.append(measure(sampler, 2, args.samples, grouped))
        print(json.dumps(results[-1]), flush=True)
    text = report(args, results, rates, tree_bytes, (load_start, os.getloadavg()[0]), bounds)
    print(text)
    if args.out:
        old = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(old, text, BEGIN, END))
    return 0


if __name__ == "__main__":
    sys.exit(main())
