"""predict.py throughput: images/s, files/s, peak host RSS and the time outside the network, on a tree and on
the same tree replicated four times.

    python -m benchmarks.bench_predict --tree data/sample/2024/input --method genre --out docs/benchmarks.md
        [--weights W] [--device auto] [--copies 4] [--work build/bench_predict]

Each run is ``python predict.py`` in its own subprocess, exactly as a user runs it. Definitions:
- image: one reconstructed 2-D output image (nx x ny); a file of nz slices and nt frames gives nz * nt;
- wall: the whole process (interpreter start, imports, model load, discovery, reconstruction, writing);
  run: the runner's own wall time (run_report.json ``seconds``, model load included); start-up = wall - run;
- images/s and files/s are over the wall time; peak RSS is the process's maximum resident set (wait4);
- outside network: the share of the run not spent in reconstruction (reading, writing, validation), from the
  report's per-file phase timings; the zero-filled floor is the same tree with ``--method zerofilled``
  (everything but the network);
- on CUDA: GPU memory in use above the idle level and mean utilisation, sampled with nvidia-smi.
The replicated tree copies every file into distinct patient folders (P001 -> P1001, P2001, ...), so that
outputs do not collide and reads are not served from one cached file. The Markdown section between this
script's markers in ``--out`` is replaced (appended the first time); other sections are kept.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import scipy.io

from benchmarks.evaluate import REPO_ROOT, MethodSpec, predict_command
from model.provenance import format_machine, machine_summary
from model.reconstruction import DEFAULT_ENSEMBLE
from model.reflection import ENSEMBLES

BEGIN, END = "<!-- bench_predict:begin -->", "<!-- bench_predict:end -->"
_PATIENT = re.compile(r"P(\d+)")
_GPU_POLL_S = 0.5


@dataclass
class Measurement:
    label: str
    method: str                     # what the run reports it ran as (a fallback when weights are missing)
    exit_code: int
    files_total: int
    files_valid: int
    images: int
    wall_seconds: float
    run_seconds: float
    peak_rss_mib: float
    outside_network_share: float | None = None    # None: run_report.json has no per-phase timings
    gpu_peak_mib: float | None = None
    gpu_util_mean: float | None = None

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_seconds

    @property
    def files_per_s(self) -> float:
        return self.files_valid / self.wall_seconds

    @property
    def startup_seconds(self) -> float:
        return self.wall_seconds - self.run_seconds


# ---------------------------------------------------------------------------------------------------------
# Pure pieces.

def replicated_name(folder: str, copy: int) -> str:
    """Patient folder name for copy `copy` (0 keeps it): P001 -> P1001, P2001, ...; other names get _c{copy}."""
    if copy == 0:
        return folder
    match = _PATIENT.fullmatch(folder)
    if match:
        digits = match[1]
        return f"P{copy * 10 ** len(digits) + int(digits):0{len(digits)}d}"
    return f"{folder}_c{copy}"


def replicate_tree(source: Path, destination: Path, copies: int) -> int:
    """Copy every file under source `copies` times into destination, renaming the folder that holds it (the
    patient folder, shared by k-space and mask files) per copy. Returns the number of files written."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{source}: no files to replicate")
    if destination.exists():
        shutil.rmtree(destination)
    written = 0
    for path in files:
        relative = path.relative_to(source)
        for copy in range(copies if len(relative.parts) > 1 else 1):
            parent = relative.parent.with_name(replicated_name(relative.parent.name, copy))
            target = destination / parent / relative.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            written += 1
    return written


def outside_network_share(files: list[dict], run_seconds: float) -> float | None:
    """1 - (time in reconstruction) / (run time), from run_report.json rows; None without phase timings."""
    if not files or run_seconds <= 0 or any("reconstruct_seconds" not in f for f in files):
        return None
    return 1.0 - sum(f["reconstruct_seconds"] for f in files) / run_seconds


def replace_section(text: str, section: str, begin: str = BEGIN, end: str = END) -> str:
    """`text` with the part from `begin` to `end` (markers included) replaced by `section`, which carries the
    markers itself; appended when the markers are absent. Everything else is kept."""
    section = section.rstrip("\n") + "\n"
    if begin in text and end in text[text.index(begin):]:
        start = text.index(begin)
        rest = text[text.index(end, start) + len(end):].lstrip("\n")
        return text[:start] + section + ("\n" + rest if rest else "")
    return text.rstrip("\n") + "\n\n" + section


def figure_link(figure: Path, page: Path) -> str:
    """The markdown image target for ``figure`` as seen from ``page``: relative to the page's folder, so that a side
    run's page (--out build/x.md --figures build/figs) links its own figures, not the shipped page's."""
    return Path(os.path.relpath(figure, page.parent)).as_posix()


# ---------------------------------------------------------------------------------------------------------
# Measuring one run.

class _GpuSampler(threading.Thread):
    """Polls nvidia-smi for device memory in use and utilisation while a run is going."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.idle_mib = self._sample()[0]
        self.peak_mib = self.idle_mib
        self.utilisation: list[float] = []

    @staticmethod
    def _sample() -> tuple[float, float]:
        output = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,"
                                 "nounits", "--id=0"], capture_output=True, text=True, check=True).stdout
        memory, utilisation = (_number_or_nan(v) for v in output.strip().splitlines()[0].split(","))
        return memory, utilisation

    def run(self) -> None:
        while not self.stop.wait(_GPU_POLL_S):
            memory, utilisation = self._sample()
            if math.isfinite(memory):
                self.peak_mib = max(self.peak_mib, memory)
            if math.isfinite(utilisation):       # '[N/A]' on MIG slices
                self.utilisation.append(utilisation)


def _number_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def count_images(output_root: Path, files: list[dict]) -> int:
    """2-D images in the valid outputs: the product of each img4ranking array's dimensions after (nx, ny)."""
    images = 0
    for row in files:
        if row["outcome"] == "failed" or not row["output_relative"]:
            continue
        shape = next(s for name, s, _ in scipy.io.whosmat(output_root / row["output_relative"])
                     if name == "img4ranking")
        images += math.prod(shape[2:])
    return images


def measure(label: str, tree: Path, output_root: Path, method: str, weights: Path | None, device: str | None,
            log_path: Path, gpu: bool, ensemble: int = DEFAULT_ENSEMBLE) -> Measurement:
    if output_root.exists():
        shutil.rmtree(output_root)
    spec = MethodSpec(method, method, weights.resolve() if weights is not None else None)
    command = predict_command(spec, tree.resolve(), output_root.resolve(), device, ensemble)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sampler = _GpuSampler() if gpu else None
    with open(log_path, "w") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if sampler:
        sampler.stop.set()
        sampler.join()
    report_path = output_root / "run_report.json"
    if not report_path.is_file():
        raise RuntimeError(f"{label}: predict.py exited {process.returncode} without {report_path}; see {log_path}")
    report = json.loads(report_path.read_text())
    return Measurement(
        label=label, method=report["primary_method"], exit_code=process.returncode,
        files_total=report["files_total"], files_valid=report["files_valid"],
        images=count_images(output_root, report["files"]), wall_seconds=wall, run_seconds=report["seconds"],
        peak_rss_mib=usage.ru_maxrss / 1024,       # KiB on Linux
        outside_network_share=outside_network_share(report["files"], report["seconds"]),
        gpu_peak_mib=(sampler.peak_mib - sampler.idle_mib) if sampler else None,
        gpu_util_mean=(sum(sampler.utilisation) / len(sampler.utilisation)
                       if sampler and sampler.utilisation else None),
    )


# ---------------------------------------------------------------------------------------------------------
# Output.

def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def format_section(rows: list[Measurement], floor: Measurement | None, command: str, machine: dict,
                   weights_line: str | None) -> str:
    gpu = any(r.gpu_peak_mib is not None for r in rows)
    header = ["tree", "ran as", "exit", "files valid/total", "images", "wall (s)", "run (s)", "start-up (s)",
              "images/s", "files/s", "peak RSS (MiB)", "outside network"]
    header += ["GPU mem above idle (MiB)", "GPU util (%)"] if gpu else []
    lines = [BEGIN, "## predict.py throughput (benchmarks/bench_predict.py)", "",
             f"- Command: `{command}`",
             f"- Machine: {format_machine(machine)}",
             f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}"]
    if weights_line:
        lines.append(f"- Weights: {weights_line}")
    lines += ["- Definitions: an image is one reconstructed 2-D output image (nz * nt per file); wall = the whole "
              "predict.py process, run = the runner's own time (run_report.json), start-up = wall - run "
              "(interpreter start and imports; loading the model counts in run); images/s and files/s over the wall time; peak RSS = the "
              "process's maximum resident set; outside network = 1 - reconstruction time / run time from the "
              "report's per-file phase timings (n/a when the report has none)"
              + ("; GPU figures from nvidia-smi samples every 0.5 s" if gpu else ""), "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.label, r.method, str(r.exit_code), f"{r.files_valid}/{r.files_total}", str(r.images),
                 f"{r.wall_seconds:.1f}", f"{r.run_seconds:.1f}", f"{r.startup_seconds:.1f}",
                 f"{r.images_per_s:.2f}", f"{r.files_per_s:.3f}", f"{r.peak_rss_mib:.0f}",
                 _cell(r.outside_network_share, "{:.1%}")]
        if gpu:
            cells += [_cell(r.gpu_peak_mib, "{:.0f}"), _cell(r.gpu_util_mean, "{:.0f}")]
        lines.append("| " + " | ".join(cells) + " |")
    if floor is not None and rows:
        first = rows[0]
        lines += ["", f"- Zero-filled floor on `{floor.label}` (reading, FFT, writing, validation; no network): "
                      f"run {floor.run_seconds:.1f} s = {floor.run_seconds / first.run_seconds:.1%} of the "
                      f"{first.method} run; wall {floor.wall_seconds:.1f} s, peak RSS {floor.peak_rss_mib:.0f} MiB"]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str, begin: str = BEGIN, end: str = END, title: str = "# Benchmarks") -> None:
    """``section`` (carrying ``begin`` ... ``end``) into the Markdown file ``path``, made with ``title``."""
    text = path.read_text() if path.exists() else title + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(text, section, begin, end))


def _weights_line(weights: Path | None, method: str, ensemble: int) -> str | None:
    if method != "genre":
        return None
    from model.checkpoint import file_sha256
    from model.reconstruction import DEFAULT_WEIGHTS

    path = Path(weights or DEFAULT_WEIGHTS)
    if not path.is_file():
        return f"{path} not found"
    return f"{path}, sha256 `{file_sha256(path)}`; --ensemble {ensemble} ({ensemble} network passes per window)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, required=True, help="an input tree, e.g. data/sample/2024/input")
    parser.add_argument("--method", default="genre", choices=("genre", "cgsense", "zerofilled"))
    parser.add_argument("--weights", type=Path, help="passed to predict.py --weights (default: its own)")
    parser.add_argument("--device", help="passed to predict.py --device (default: its own)")
    parser.add_argument("--ensemble", type=int, choices=sorted(ENSEMBLES), default=DEFAULT_ENSEMBLE,
                        help="passed to predict.py --ensemble (genre)")
    parser.add_argument("--copies", type=int, default=4, help="size of the replicated tree in copies of --tree")
    parser.add_argument("--work", type=Path, default=Path("build/bench_predict"), help="replicated tree, outputs")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    if not args.tree.is_dir():
        print(f"error: --tree {args.tree} is not a directory", file=sys.stderr)
        return 2
    command = shlex.join(["python", "-m", "benchmarks.bench_predict", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_summary()
    gpu = machine["gpu"] is not None and shutil.which("nvidia-smi") is not None
    replicated = args.work / f"input_x{args.copies}"
    print(f"replicated {args.tree} {args.copies}x: {replicate_tree(args.tree, replicated, args.copies)} files "
          f"under {replicated}", flush=True)
    trees = [(f"{args.tree} (x1)", args.tree, "x1"), (f"{args.tree} (x{args.copies})", replicated, f"x{args.copies}")]
    rows = []
    for label, tree, tag in trees:
        rows.append(measure(label, tree, args.work / f"output_{tag}", args.method, args.weights, args.device,
                            args.work / f"predict_{tag}.log", gpu, args.ensemble))
        print(json.dumps(asdict(rows[-1])), flush=True)
    floor = None
    if args.method != "zerofilled":
        floor = measure(f"{args.tree} (x1)", args.tree, args.work / "output_zerofilled", "zerofilled", None,
                        None, args.work / "predict_zerofilled.log", False)
        print(json.dumps(asdict(floor)), flush=True)
    weights_line = _weights_line(args.weights, args.method, args.ensemble)
    write_section(args.out, format_section(rows, floor, command, machine, weights_line))
    (args.work / "bench_predict.json").write_text(json.dumps(
        {"command": command, "machine": machine, "runs": [asdict(r) for r in rows],
         "zerofilled_floor": asdict(floor) if floor else None}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
