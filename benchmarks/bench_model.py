"""Generator cost per preset: parameters, FLOPs, CPU and CUDA throughput and memory, fp32 vs fp16.

    python benchmarks/bench_model.py [--configs paper small tiny] [--repeats 3] [--timeout 1200]
                                     [--out docs/benchmarks.md]

Random weights on a random 10-coil 246 x 512 cine-like slice (5-frame window, every 8th phase-encode line plus
16 ACS lines). One output slice = one forward pass for one target frame. Each CPU measurement runs in its own
subprocess (peak RSS is that process's, and a config that overruns ``--timeout`` is recorded as such). On
CUDA, fp32 and fp16-autocast runs are compared (slices/s, peak allocated memory, relative L2 difference).
The markdown section between this script's markers in ``--out`` is replaced (appended the first time).
"""
import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from model.config import PRESETS  # noqa: E402
from model.generator import GenreGenerator, flops_per_output_slice, parameter_counts  # noqa: E402
from model.normalisation import kspace_scale  # noqa: E402
from model.provenance import cpu_model  # noqa: E402

START, END = "<!-- bench_model:start -->", "<!-- bench_model:end -->"


def cine_slice(batch: int, coils: int, height: int, width: int, device: torch.device, frames: int = 5):
    """Normalised masked k-space (batch, frames, coils, H, W) and its mask (batch, frames, 1, H, W)."""
    generator = torch.Generator().manual_seed(0)
    kspace = torch.randn(batch, frames, coils, height, width, dtype=torch.complex64, generator=generator)
    mask = torch.zeros(batch, frames, 1, height, width)
    for frame in range(frames):
        mask[:, frame, :, frame % 8::8] = 1
    mask[..., height // 2 - 8:height // 2 + 8, :] = 1
    kspace = kspace * mask
    kspace = kspace / kspace_scale(kspace)[:, None, None, None, None]
    return kspace.to(device), mask.to(device)


def time_forward(generator, kspace, mask, repeats: int, amp: bool) -> tuple[float, torch.Tensor]:
    """Seconds per forward pass (after one warm-up) and the last output image."""
    device = kspace.device
    shared = kspace.mean(dim=1)   # a stand-in of the right shape for view-sharing configurations
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        image = generator(kspace, mask, 16, False, shared).image
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            image = generator(kspace, mask, 16, False, shared).image
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, image.float()


def cpu_worker(name: str, coils: int, height: int, width: int, repeats: int) -> dict:
    torch.manual_seed(0)
    generator = GenreGenerator(PRESETS[name]).eval()
    kspace, mask = cine_slice(1, coils, height, width, torch.device("cpu"), PRESETS[name].adjacent_frames)
    seconds, _ = time_forward(generator, kspace, mask, repeats, amp=False)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"cpu_slices_per_s": 1.0 / seconds, "cpu_peak_rss_gib": peak_kib / 2 ** 20}


def cpu_measure(name: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--coils", str(args.coils), "--height",
               str(args.height), "--width", str(args.width), "--repeats", str(args.repeats)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"cpu_note": f"timed out after {args.timeout} s"}
    except subprocess.CalledProcessError as error:
        return {"cpu_note": f"failed: {error.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cuda_measure(name: str, args) -> dict:
    device = torch.device("cuda")
    torch.manual_seed(0)
    generator = GenreGenerator(PRESETS[name]).to(device).eval()
    kspace, mask = cine_slice(args.cuda_batch, args.coils, args.height, args.width, device,
                              PRESETS[name].adjacent_frames)
    result, images = {}, {}
    for label, amp in (("fp32", False), ("fp16", True)):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        seconds, images[label] = time_forward(generator, kspace, mask, args.repeats, amp)
        result[f"cuda_{label}_slices_per_s"] = args.cuda_batch / seconds
        result[f"cuda_{label}_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    difference = torch.linalg.vector_norm(images["fp16"] - images["fp32"]) / torch.linalg.vector_norm(images["fp32"])
    result["cuda_fp16_rel_l2_diff"] = float(difference)
    return result


def markdown(rows: list[dict], args, command: str) -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        START, "## Generator model (benchmarks/bench_model.py)", "",
        f"- Command: `{command}`",
        f"- Machine: {cpu_model()}, {torch.get_num_threads()} torch threads; GPU: {gpu}; "
        f"torch {torch.__version__}, Python {platform.python_version()}",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}",
        f"- Input: one output slice = one forward pass: {args.coils} coils, 5 frames, {args.height} x {args.width};"
        f" random weights; {args.repeats} timed repetitions after one warm-up"
        + (f"; CUDA batch {args.cuda_batch} windows" if torch.cuda.is_available() else ""),
        "- FLOPs: torch FlopCounterMode (convolutions and matmuls; FFTs and elementwise ops not counted)", "",
    ]
    columns = [("config", "config", "{}"), ("trainable_params", "trainable params (M)", "{:.2f}"),
               ("total_params", "total params (M)", "{:.2f}"), ("tflops", "TFLOP / slice", "{:.3f}"),
               ("tflops_448x204", "TFLOP / slice at 448x204, 10 coils", "{:.3f}"),
               ("cpu_slices_per_s", "CPU slices/s", "{:.3f}"), ("cpu_peak_rss_gib", "CPU peak RSS (GiB)", "{:.2f}")]
    if torch.cuda.is_available():
        columns += [("cuda_fp32_slices_per_s", "CUDA fp32 slices/s", "{:.2f}"),
                    ("cuda_fp32_peak_gib", "fp32 peak (GiB)", "{:.2f}"),
                    ("cuda_fp16_slices_per_s", "CUDA fp16 slices/s", "{:.2f}"),
                    ("cuda_fp16_peak_gib", "fp16 peak (GiB)", "{:.2f}"),
                    ("cuda_fp16_rel_l2_diff", "fp16 vs fp32 rel. L2", "{:.1e}")]
    lines.append("| " + " | ".join(title for _, title, _ in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = [fmt.format(row[key]) if key in row else row.get("cpu_note", "-") if key.startswith("cpu")
                 else "-" for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # paper-view-sharing computes what paper does (the view-shared start is one k-space average per slice)
    default_configs = [name for name in PRESETS if name != "paper-view-sharing"]
    parser.add_argument("--configs", nargs="+", default=default_configs, choices=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per config for the CPU run")
    parser.add_argument("--coils", type=int, default=10)
    parser.add_argument("--height", type=int, default=246)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--cuda-batch", type=int, default=4, help="windows per forward pass on CUDA")
    parser.add_argument("--skip-cpu", action="store_true", help="only parameters, FLOPs and CUDA")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs/benchmarks.md")
    parser.add_argument("--worker", choices=list(PRESETS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(cpu_worker(args.worker, args.coils, args.height, args.width, args.repeats)))
        return 0
    rows = []
    for name in args.configs:
        with torch.device("meta"):
            trainable, total = parameter_counts(GenreGenerator(PRESETS[name]))
        row = {"config": name, "trainable_params": trainable / 1e6, "total_params": total / 1e6,
               "tflops": flops_per_output_slice(PRESETS[name], args.coils, args.height, args.width) / 1e12,
               # the size E2E-VarNet's 0.15 TFLOP per slice refers to (deployment.md)
               "tflops_448x204": flops_per_output_slice(PRESETS[name], 10, 204, 448) / 1e12}
        if not args.skip_cpu:
            row.update(cpu_measure(name, args))
        if torch.cuda.is_available():
            row.update(cuda_measure(name, args))
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = "python benchmarks/bench_model.py " + " ".join(sys.argv[1:])
    write_section(args.out, markdown(rows, args, command.strip()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
