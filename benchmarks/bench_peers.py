"""Speed side by side, in one process on the same slices: GENRE-CMR (shipped and paper configurations) and the
peers, their bare network against predict.py, images/s and peak memory on the CPU.

    python -m benchmarks.bench_peers [--shapes 246x512 162x448] [--coils 10] [--frames 12] [--slices 1]
        [--genre shipped=weights/genre_cmr.pt paper=preset:paper] [--peers varnet sigpy-cs]
        [--peer-weights runs/peers] [--work build/bench_peers] [--out docs/benchmarks.md]

Per shape (ny x nx) one 2024 Task-2 file is simulated (a phantom cine, ``--coils`` coils, ktGaussian AF 8 with 16
ACS lines, ``--frames`` x ``--slices`` images) and written as predict.py reads it. Per method, in this process:
- network: the method's own computation (GENRE: the generator's forward passes; VarNet: the network's; sigpy-cs:
  ESPIRiT and the L1-wavelet solver), timed inside one ``reconstruct`` call over the file's slices, after a
  one-frame warm-up; reconstructor: that whole call (windows, normalisation, copies); predict.py: ``predict.main``
  on the file, images over the runner's own time (run_report.json: model load, read, reconstruct, write and
  validation; no interpreter start-up, this is one process) and its per-file phases;
- outside the network = 1 - (predict.py images/s) / (network images/s); the target is below 10%;
- peak memory: the process's resident high-water mark during the reconstructor call (reset first through
  /proc/self/clear_refs) above what the process held before it.
GENRE runs with ``--ensemble 1`` (one network pass per image; predict.py's default of 2 doubles the network time)
and batch 8. ``preset:NAME`` is a random generator of that configuration (the cost does not depend on the
weights); a peer without trained weights under ``--peer-weights`` runs randomly initialised at its published size.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_predict import write_section
from benchmarks.evaluate import REPO_ROOT
from model.provenance import format_machine, machine_summary

BEGIN, END = "<!-- bench_peers:begin -->", "<!-- bench_peers:end -->"
NUM_ACS = 16
BATCH = 8


@dataclass
class Method:
    label: str
    method: str              # predict.py --method
    weights: Path | None
    note: str = ""


@dataclass
class Row:
    shape: str
    label: str
    images: int
    network_s: float
    reconstruct_s: float
    predict_s: float
    predict_phases: dict
    peak_gib: float
    predict_exit: int

    def rate(self, seconds: float) -> float:
        return self.images / seconds if seconds > 0 else float("nan")

    @property
    def outside_network(self) -> float:
        return 1 - self.rate(self.predict_s) / self.rate(self.network_s)


# ---------------------------------------------------------------------------------------------------------
# Inputs and methods.

def parse_shape(text: str) -> tuple[int, int]:
    try:
        ny, nx = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like NYxNX, got {text!r}") from None
    return ny, nx


def write_input(root: Path, ny: int, nx: int, coils: int, frames: int, slices: int, seed: int = 0):
    """One 2024 Task-2 input file under ``root`` -> (masked k-space (nt, nz, nc, ny, nx), mask (nt, ny, nx))."""
    from challenge.masks import make_mask
    from tools.sample_data import Case, magnitude_series, write_case
    from simulation.acquisition import simulate_kspace

    rng = np.random.default_rng(seed)
    case = Case("Cine/TestSet/UnderSample_Task2/P001/cine_sax_kus_ktGaussian8.mat", "cine", frames, slices, coils,
                ny, nx, "ktGaussian", 8, mask_relative="Cine/TestSet/Mask_Task2/P001/cine_sax_mask_ktGaussian8.mat")
    kspace, reference = simulate_kspace(magnitude_series(case, rng, []), coils, rng)
    mask = make_mask("ktGaussian", frames, ny, nx, 8, NUM_ACS, rng)
    write_case(root, kspace, reference, mask, case, crops=(False,))
    return kspace * mask[:, None, None], mask


def genre_methods(items: list[str], work: Path) -> list[Method]:
    """LABEL=PATH (a GENRE checkpoint) or LABEL=preset:NAME (random, written under ``work``)."""
    from model.checkpoint import save_generator
    from model.config import preset
    from model.generator import GenreGenerator
    import torch

    methods = []
    for item in items:
        label, _, source = item.partition("=")
        if not label or not source:
            raise SystemExit(f"--genre {item!r}: expected LABEL=PATH or LABEL=preset:NAME")
        if source.startswith("preset:"):
            name = source.split(":", 1)[1]
            path = work / f"genre-{name}-random.pt"
            if not path.is_file():
                torch.manual_seed(0)
                save_generator(path, preset(name), GenreGenerator(preset(name)).state_dict(),
                               {"note": "random initialisation for benchmarks.bench_peers"})
            methods.append(Method(label, "genre", path, f"{name} configuration, random weights"))
        else:
            methods.append(Method(label, "genre", Path(source), f"weights {source}"))
    return methods


def peer_methods(names: list[str], weights_root: Path, work: Path) -> list[Method]:
    """Each peer; a learned one takes ``weights_root/NAME/NAME.pt`` or, absent that, random weights at its
    published size written under ``work``."""
    import importlib

    import torch

    import peers
    from peers.checkpoint import save_peer

    methods = []
    for name in names:
        peer = peers.PEERS[name]
        if not peer.learned:
            methods.append(Method(name, name, None, peer.description))
            continue
        trained = weights_root / name / f"{name}.pt"
        if trained.is_file():
            methods.append(Method(name, name, trained, f"{peer.description}; weights {trained}"))
            continue
        module = importlib.import_module(peer.module)
        path = work / f"{name}-random.pt"
        if not path.is_file():
            torch.manual_seed(0)
            save_peer(path, name, module.HPARAMS, module.new_network(module.HPARAMS).state_dict(),
                      {"note": "random initialisation for benchmarks.bench_peers"})
        methods.append(Method(name, name, path, f"{peer.description}; random weights at its published size"))
    return methods


# ---------------------------------------------------------------------------------------------------------
# Measuring.

class Stopwatch:
    """Adds up the time spent in the wrapped callables (object attributes) while it is active."""

    def __init__(self, targets: list[tuple[object, str]]):
        self.targets, self.seconds, self._saved = targets, 0.0, []

    def __enter__(self):
        for owner, attribute in self.targets:
            original = getattr(owner, attribute)
            self._saved.append((owner, attribute, original, attribute in vars(owner)))

            def timed(*args, _original=original, **kwargs):
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - started
            setattr(owner, attribute, timed)
        return self

    def __exit__(self, *exc):
        for owner, attribute, original, own in reversed(self._saved):
            if own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)     # back to the class's method
        self._saved.clear()


def network_targets(reconstructor) -> list[tuple[object, str]]:
    """What counts as the method's network: GENRE's generator, VarNet's network, sigpy-cs's two solvers."""
    if reconstructor.name == "genre":
        return [(reconstructor.generator, "forward")]
    if hasattr(reconstructor, "network"):
        return [(reconstructor.network, "forward")]
    if reconstructor.name == "sigpy-cs":
        import peers.sigpy_cs
        return [(peers.sigpy_cs, "espirit_maps"), (peers.sigpy_cs, "cs_frame")]
    raise ValueError(f"no network known for {reconstructor.name}")


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_high_water_mark() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def measure(method: Method, shape: str, kspace: np.ndarray, mask: np.ndarray, input_root: Path,
            work: Path) -> Row:
    import predict
    from model.reconstruction import VolumeMeta, build_reconstructor

    meta = VolumeMeta(num_acs=NUM_ACS, radial=False, cyclic=True, name=shape)
    reconstructor = build_reconstructor(method.method, weights=method.weights, device="cpu", batch_size=BATCH,
                                        ensemble=1)
    reconstructor.reconstruct(kspace[:1, :1], mask[:1], meta)                       # warm-up
    reset_high_water_mark()
    before = resident_kib("VmRSS")
    with Stopwatch(network_targets(reconstructor)) as watch:
        started = time.perf_counter()
        image = reconstructor.reconstruct(kspace, mask, meta)
        reconstruct_s = time.perf_counter() - started
    peak_gib = (resident_kib("VmHWM") - before) / 2 ** 20
    if not np.isfinite(image).all():
        raise RuntimeError(f"{method.label} on {shape}: non-finite output")
    del reconstructor, image
    out = work / "out" / shape / method.label
    arguments = ["--input", str(input_root), "--output", str(out), "--method", method.method, "--device", "cpu",
                 "--batch-size", str(BATCH), "--ensemble", "1"]
    code = predict.main(arguments + (["--weights", str(method.weights)] if method.weights else []))
    report = json.loads((out / "run_report.json").read_text())
    phases = {key: round(sum(f.get(key, 0.0) for f in report["files"]), 2)
              for key in ("read_seconds", "reconstruct_seconds", "write_seconds")}
    if report["primary_method"] != method.method:
        raise RuntimeError(f"{method.label}: predict.py ran as {report['primary_method']} ({report['notes']})")
    return Row(shape, method.label, int(kspace.shape[0] * kspace.shape[1]), watch.seconds, reconstruct_s,
               float(report["seconds"]), phases, peak_gib, code)


# ---------------------------------------------------------------------------------------------------------
# Output.

def format_section(rows: list[Row], methods: list[Method], command: str, machine: dict, args) -> str:
    lines = [BEGIN, "## Side by side: GENRE-CMR and the peers (benchmarks/bench_peers.py)", "",
             f"- Command: `{command}`", f"- Machine: {format_machine(machine)}",
             f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}",
             f"- Input per shape: one simulated 2024 Task-2 file, {args.coils} coils, ktGaussian AF 8, {NUM_ACS} ACS "
             f"lines, {args.frames} frames x {args.slices} slices; GENRE `--ensemble 1`, batch {BATCH}; one process",
             "- network / reconstructor / predict.py: images/s of the method's own computation, of the whole "
             "reconstruct call, and of predict.py's runner (model load, read, write, validation included); outside "
             "network = 1 - predict.py / network; peak = resident high-water mark of the reconstruct call above "
             "the process's memory before it", ""]
    lines += [f"- `{m.label}`: {m.method}, {m.note}" for m in methods]
    header = ["ny x nx", "method", "images", "network img/s", "reconstructor img/s", "predict.py img/s",
              "outside network", "within 10%", "predict.py read / reconstruct / write (s)", "peak (GiB)"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        phases = " / ".join(f"{r.predict_phases[k]:.1f}" for k in ("read_seconds", "reconstruct_seconds",
                                                                      "write_seconds"))
        lines.append(f"| {r.shape} | {r.label} | {r.images} | {r.rate(r.network_s):.3f} | "
                     f"{r.rate(r.reconstruct_s):.3f} | {r.rate(r.predict_s):.3f} | {r.outside_network:.1%} | "
                     f"{'yes' if r.outside_network <= 0.10 else 'NO'} | {phases} | {r.peak_gib:.2f} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import peers

    installed = [name for name, peer in peers.PEERS.items() if _importable(peer.package)]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=parse_shape, nargs="+", default=[(246, 512), (162, 448)], metavar="NYxNX")
    parser.add_argument("--coils", type=int, default=10)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--slices", type=int, default=1)
    parser.add_argument("--genre", nargs="*", default=["shipped=weights/genre_cmr.pt", "paper=preset:paper"],
                        metavar="LABEL=PATH|LABEL=preset:NAME")
    parser.add_argument("--peers", nargs="*", choices=list(peers.PEERS), default=installed)
    parser.add_argument("--peer-weights", type=Path, default=peers.RUNS, help="DIR/NAME/NAME.pt per learned peer")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "bench_peers")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    methods = genre_methods(args.genre, args.work) + peer_methods(args.peers, args.peer_weights, args.work)
    rows = []
    for ny, nx in args.shapes:
        shape = f"{ny}x{nx}"
        input_root = args.work / "input" / shape
        kspace, mask = write_input(input_root, ny, nx, args.coils, args.frames, args.slices)
        for method in methods:
            rows.append(measure(method, shape, kspace, mask, input_root, args.work))
            print(json.dumps(asdict(rows[-1])), flush=True)
    command = shlex.join(["python", "-m", "benchmarks.bench_peers", *(sys.argv[1:] if argv is None else argv)])
    section = format_section(rows, methods, command, machine_summary(), args)
    write_section(args.out, section, BEGIN, END)
    (args.work / "bench_peers.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(f"wrote {args.out}")
    return 0


def _importable(package: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(package) is not None


if __name__ == "__main__":
    sys.exit(main())
