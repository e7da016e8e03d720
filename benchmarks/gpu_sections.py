"""The checks of ``make gpu-check`` (benchmarks/gpu_check.py runs them, each in its own process, and reports).

Every check takes the run's ``CheckOptions`` and returns a ``Section``: a status, a one-line summary, table rows
and notes. A check that raises is recorded by the driver; none of them stops another. In dry mode the same code
runs on the CPU (gloo for NCCL, the tiny generator for both configurations, tiny inputs, a few steps), so that
the tests prove the script before a GPU ever runs it.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
PASS, FAIL = "PASS", "FAIL"
# predict.py on CUDA against the same run on the CPU: max |cuda - cpu| / max |cpu| per file. TF32 convolutions
# (cuDNN's default) and fp16 autocast change the last digits; these bounds are this check's, not the challenge's.
FP32_TOLERANCE = 5e-3
FP16_TOLERANCE = 5e-2


@dataclass
class CheckOptions:
    """What the checks run on. ``deadline``: wall-clock time (time.time()) by which a check must be done;
    loops stop early and say so when it comes."""
    dry: bool
    work: Path                        # scratch: trees, outputs, checkpoints
    weights: Path                     # the shipped generator
    paper_preset: str                 # model.config preset of "the paper configuration"
    sample: Path                      # sample trees root ({year}/input, {year}/gt_full)
    years: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    coils: int
    height: int
    width: int
    repeats: int
    train_model: str                  # model.config preset trained with AMP
    train_steps: int
    train_crop: int                   # readout columns per training window (0: the whole readout)
    workers: int                      # DataLoader workers of the training check
    rate_steps: int                   # timed training steps per generator in the rates check
    loader_workers: tuple[int, ...]   # DataLoader worker counts the rates check times
    deadline: float = math.inf

    @property
    def device(self) -> torch.device:
        return torch.device("cpu" if self.dry else "cuda")

    @property
    def backend(self) -> str:
        return "gloo" if self.dry else "nccl"

    def seconds_left(self) -> float:
        return self.deadline - time.time()

    def to_json(self) -> str:
        return json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> "CheckOptions":
        values = json.loads(text)
        for key in ("work", "weights", "sample"):
            values[key] = Path(values[key])
        for key in ("years", "batch_sizes", "loader_workers"):
            values[key] = tuple(values[key])
        return cls(**values)


@dataclass
class Section:
    status: str
    summary: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# Device helpers: the same calls on CUDA and (dry) CPU.

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak GPU memory allocated since the last reset_peak (None on the CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


# ---------------------------------------------------------------------------------------------------------
# environment

def check_environment(options: CheckOptions) -> Section:
    rows = [{"item": "torch", "value": torch.__version__},
            {"item": "torch CUDA build", "value": str(torch.version.cuda)},
            {"item": "cuDNN", "value": str(torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
                                           else None)},
            {"item": "CUDA available", "value": str(torch.cuda.is_available())}]
    if options.dry:
        return Section(PASS, "dry run on the CPU (no GPU asked for)", rows)
    if not torch.cuda.is_available():
        return Section(FAIL, "torch sees no CUDA device", rows)
    properties = torch.cuda.get_device_properties(0)
    rows += [{"item": "GPU", "value": properties.name},
             {"item": "compute capability", "value": f"{properties.major}.{properties.minor}"},
             {"item": "memory (GiB)", "value": f"{properties.total_memory / 2 ** 30:.1f}"},
             {"item": "devices", "value": str(torch.cuda.device_count())},
             {"item": "compiled arch list", "value": " ".join(torch.cuda.get_arch_list())},
             {"item": "TF32 (matmul / cuDNN)", "value": f"{torch.backends.cuda.matmul.allow_tf32} / "
                                                         f"{torch.backends.cudnn.allow_tf32}"}]
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        rows.append({"item": "nvidia-smi", "value": smi.stdout.strip() or smi.stderr.strip()})
    a = torch.randn(256, 256, device="cuda")
    product = (a @ a).cpu()
    ok = bool(torch.allclose(product, a.cpu() @ a.cpu(), rtol=1e-2, atol=1e-2))
    rows.append({"item": "256 x 256 matmul matches the CPU", "value": str(ok)})
    return Section(PASS if ok else FAIL, f"{properties.name}, {properties.total_memory / 2 ** 30:.0f} GiB", rows)


# ---------------------------------------------------------------------------------------------------------
# predict.py on the sample trees: CPU, CUDA fp32, CUDA fp16

RUNS = (("cpu", "cpu", False), ("cuda fp32", "cuda", False), ("cuda fp16", "cuda", True))


def tiny_sample_tree(root: Path, seed: int = 0) -> None:
    """A 2024 input tree of one small file (ktUniform 8) and its ground truth, for the dry run."""
    from challenge.masks import make_mask
    from challenge.rules import ACS_LINES
    from tools.sample_data import Case, magnitude_series, write_case
    from simulation.acquisition import simulate_kspace

    rng = np.random.default_rng(seed)
    cases = [Case("Cine/TestSet/UnderSample_Task2/P001/cine_sax_kus_ktUniform8.mat", "cine", 5, 1, 4, 33, 40,
                  "ktUniform", 8, mask_relative="Cine/TestSet/Mask_Task2/P001/cine_sax_mask_ktUniform8.mat")]
    for case in cases:
        kspace, reference = simulate_kspace(magnitude_series(case, rng, []), case.nc, rng)
        mask = make_mask(case.pattern, case.nt, case.ny, case.nx, case.factor, ACS_LINES[2024], rng)
        write_case(root, kspace, reference, mask, case, crops=(False,))


def sample_trees(options: CheckOptions, notes: list[str]) -> Path:
    """The sample root holding every year's input and ground truth, built under ``work`` when absent."""
    if all((options.sample / str(year) / "input").is_dir() for year in options.years):
        return options.sample
    root = options.work / "sample"
    started = time.monotonic()
    if options.dry:
        tiny_sample_tree(root / "2024")
    else:
        from tools.sample_data import build_sample_trees
        build_sample_trees(root, years=options.years)
    notes.append(f"{options.sample} lacked a year's tree: built under {root} in {time.monotonic() - started:.0f} s")
    return root


def run_predict(arguments: list[str], in_process: bool, timeout: float, log: Path) -> tuple[int, float]:
    """predict.py with ``arguments`` -> (exit status, wall seconds). A subprocess as a user runs it (its output
    in ``log``); in the dry run its main() in this process (an interpreter start costs more than the tiny run)."""
    started = time.monotonic()
    if in_process:
        import predict
        code = predict.main(arguments)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as stream:
            try:
                code = subprocess.run([sys.executable, "predict.py", *arguments], cwd=REPO_ROOT, stdout=stream,
                                      stderr=subprocess.STDOUT, timeout=max(timeout, 1)).returncode
            except subprocess.TimeoutExpired:
                code = 124
    return code, time.monotonic() - started


def max_relative_error(reference_root: Path, other_root: Path) -> tuple[float, int]:
    """max over the reference tree's .mat files of max|other - reference| / max|reference| -> (value, files);
    inf where the other tree lacks a file or its shape differs."""
    from challenge.scoring import load_ranking_array

    worst, files = 0.0, 0
    for path in sorted(reference_root.rglob("*.mat")):
        reference = np.asarray(load_ranking_array(path), dtype=np.float64)
        other_path = other_root / path.relative_to(reference_root)
        other = np.asarray(load_ranking_array(other_path), dtype=np.float64) if other_path.is_file() else None
        if other is None or other.shape != reference.shape:
            return math.inf, files
        worst = max(worst, float(np.abs(other - reference).max() / max(np.abs(reference).max(), 1e-30)))
        files += 1
    return worst, files


def check_predict(options: CheckOptions) -> Section:
    from challenge.scoring import score_trees

    notes: list[str] = []
    root = sample_trees(options, notes)
    years = [year for year in options.years if (root / str(year) / "input").is_dir()]
    rows, problems = [], []
    for year in years:
        outputs = {}
        for label, device, amp in RUNS:
            if options.seconds_left() < 5:
                problems.append(f"{year} {label}: not run, time budget used up")
                continue
            out = options.work / "predict" / str(year) / label.replace(" ", "-")
            shutil.rmtree(out, ignore_errors=True)
            arguments = ["--input", str(root / str(year) / "input"), "--output", str(out), "--device",
                         "cpu" if options.dry else device, "--weights", str(options.weights),
                         *(["--amp"] if amp else []), *(["--ensemble", "1"] if options.dry else [])]
            code, seconds = run_predict(arguments, options.dry, options.seconds_left(), out.with_suffix(".log"))
            report = json.loads((out / "run_report.json").read_text()) if (out / "run_report.json").is_file() else {}
            methods = sorted({f.get("method") or "-" for f in report.get("files", [])})
            score = score_trees(root / str(year) / "gt_full", out, year)
            outputs[label] = out
            row = {"year": year, "run": label, "exit": code, "w (run report)":
                   f"{report.get('files_valid', 0)}/{report.get('files_total', 0)}",
                   "w (scorer)": f"{score.overall.success_rate:.3f}", "ran as": "+".join(methods),
                   "PSNR vs GT (dB)": f"{score.overall.psnr_adj:.2f}", "wall (s)": f"{seconds:.1f}",
                   "max rel. error vs cpu": "-"}
            if label != "cpu" and "cpu" in outputs:
                error, _ = max_relative_error(outputs["cpu"], out)
                row["max rel. error vs cpu"] = f"{error:.2e}"
                tolerance = FP16_TOLERANCE if amp else FP32_TOLERANCE
                if not error <= tolerance:
                    problems.append(f"{year} {label}: max relative error {error:.2e} > {tolerance:g}")
            if code != 0 or report.get("files_valid") != report.get("files_total") or methods != ["genre"] \
                    or score.overall.success_rate != 1.0:
                problems.append(f"{year} {label}: exit {code}, ran as {'+'.join(methods)}, "
                                f"w = {score.overall.success_rate:.3f}")
            rows.append(row)
    notes += [f"predict.py logs: {options.work / 'predict'}/YEAR/RUN.log",
              f"relative error = max|x - x_cpu| / max|x_cpu| per file, the worst file; bounds {FP32_TOLERANCE:g} "
              f"(fp32) and {FP16_TOLERANCE:g} (fp16)", f"weights: {options.weights}; predict.py's default ensemble"
              + (" (dry run: --ensemble 1)" if options.dry else "")]
    status = PASS if rows and not problems else FAIL
    summary = (f"{len(years)} year(s) x {len(RUNS)} runs: w = 1 and within the bounds" if status == PASS
               else "; ".join(problems) or "no sample tree ran")
    return Section(status, summary, rows, notes)


# ---------------------------------------------------------------------------------------------------------
# throughput: images/s and peak memory per batch size, shipped and paper configurations

def generators(options: CheckOptions) -> list[tuple[str, torch.nn.Module]]:
    """(label, generator in eval mode on the device): the shipped weights and the paper configuration (random
    initialisation: the cost does not depend on the weights)."""
    from model.checkpoint import load_generator
    from model.config import preset
    from model.generator import GenreGenerator

    shipped, record = load_generator(options.weights, options.device)
    torch.manual_seed(0)
    paper = GenreGenerator(preset(options.paper_preset)).to(options.device).eval()
    model = record.get("train_config", {}).get("model", f"{shipped.config.cascades} cascades")
    return [(f"shipped ({options.weights.name}: {model})", shipped),
            (f"paper ({options.paper_preset}, random init)", paper)]


def check_throughput(options: CheckOptions) -> Section:
    from benchmarks.bench_model import cine_slice, time_forward

    device, rows, notes = options.device, [], []
    for label, generator in generators(options):
        frames = generator.config.adjacent_frames
        for precision, amp in (("fp32", False), ("fp16", True)):
            for batch in options.batch_sizes:
                if options.seconds_left() < 10:
                    notes.append(f"{label} {precision} batch {batch} and after: not run, time budget used up")
                    break
                kspace, mask = cine_slice(batch, options.coils, options.height, options.width, device, frames)
                reset_peak(device)
                try:
                    seconds, image = time_forward(generator, kspace, mask, options.repeats, amp)
                except Exception as error:          # noqa: BLE001 - an OOM at a large batch is a result
                    from challenge.fallback import is_out_of_memory
                    if not is_out_of_memory(error):
                        raise
                    rows.append({"config": label, "precision": precision, "batch": batch, "images/s": "OOM",
                                 "peak GiB": "-", "finite": "-"})
                    del kspace, mask
                    break
                peak = peak_gib(device)
                rows.append({"config": label, "precision": precision, "batch": batch,
                             "images/s": f"{batch / seconds:.2f}",
                             "peak GiB": "-" if peak is None else f"{peak:.2f}",
                             "finite": str(bool(torch.isfinite(image).all()))})
                del kspace, mask, image
        del generator
    notes += [f"one image = one forward pass for one target frame: {options.coils} coils, 5-frame window, "
              f"{options.height} x {options.width}, ktUniform-like mask with 16 ACS lines; {options.repeats} timed "
              f"passes after one warm-up; peak = torch.cuda.max_memory_allocated"]
    if options.dry:
        notes.append("dry run: fp16 autocast is CUDA-only, so the fp16 rows ran in fp32 on the CPU")
    measured = [r for r in rows if r["images/s"] not in ("OOM",)]
    status = PASS if measured and all(r["finite"] == "True" for r in measured) else FAIL
    return Section(status, f"{len(measured)} measurements, {sum(r['images/s'] == 'OOM' for r in rows)} OOM",
                   rows, notes)


# ---------------------------------------------------------------------------------------------------------
# oom_retry: a run's one out-of-memory policy (challenge.fallback): GENRE retried with half its batch, same images

class _NoProgress:
    def begin_attempt(self) -> None: ...

    def abort_attempt(self) -> None: ...

    def update(self, slices: int) -> None: ...


def check_oom_retry(options: CheckOptions) -> Section:
    from benchmarks.bench_model import cine_slice
    from challenge.fallback import MethodChain
    from model.inference import GenreReconstructor
    from model.reconstruction import VolumeMeta

    device = options.device
    batch = max(options.batch_sizes)
    generator = torch.Generator().manual_seed(1)
    kspace = torch.randn(batch, 1, options.coils, options.height, options.width, dtype=torch.complex64,
                         generator=generator)
    _, window_mask = cine_slice(1, 1, options.height, options.width, torch.device("cpu"), batch)
    mask = window_mask[0, :, 0].bool().numpy()                      # (nt, ny, nx): nt = one full batch
    kspace = (kspace * torch.from_numpy(mask)[:, None, None]).numpy()
    meta = VolumeMeta(num_acs=16, radial=False, cyclic=True, name="oom-check")
    reconstructor = GenreReconstructor(options.weights, device=device, batch_size=batch, ensemble=1)

    tried: list[int] = []                   # the batch size of every _run_frames call, in order
    inject = {"armed": False}               # dry run: raise the OOM the CPU cannot, where CUDA would
    run_frames = reconstructor._run_frames

    def recording(kspace_t, mask_t, meta_, batch_size, frames, generator_):
        tried.append(batch_size)
        if inject["armed"] and batch_size > 1 and len(tried) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the dry run)")
        return run_frames(kspace_t, mask_t, meta_, batch_size, frames, generator_)

    reconstructor._run_frames = recording
    reset_peak(device)
    reference = reconstructor.reconstruct(kspace, mask, meta)
    peak_full = peak_gib(device)
    rows = [{"run": f"batch {batch}, no cap", "batch sizes tried": " ".join(map(str, tried)),
             "peak GiB": "-" if peak_full is None else f"{peak_full:.2f}", "method": "genre", "max rel. diff": "-"}]
    tried.clear()
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())   # the memory-fraction calls need an index
        # a genuine CUDA OOM: cap this process below the full batch's peak, above a quarter batch's need
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        cap = base + 0.45 * (torch.cuda.max_memory_allocated(device) - base)
        torch.cuda.set_per_process_memory_fraction(min(cap / total, 1.0), device)
        label = f"capped at {cap / 2 ** 30:.2f} GiB (genuine OOM)"
    else:
        inject["armed"] = True
        label = "OOM injected at the first call"
    notes: list[str] = []

    def factory(method: str):
        if method != "genre":
            raise RuntimeError("this check runs GENRE alone")
        return reconstructor
    try:                                    # the run's path: the method chain and its out-of-memory policy
        chain = MethodChain("genre", factory, notes)
        retried, method, why = chain.reconstruct(kspace, mask, meta, _NoProgress(), notes)
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    if retried is None or method != "genre":
        return Section(FAIL, f"GENRE did not finish under the cap ({why}); batch sizes tried {tried}", rows, notes)
    difference = float(np.abs(retried - reference).max() / max(np.abs(reference).max(), 1e-30))
    rows.append({"run": label, "batch sizes tried": " ".join(map(str, tried)), "peak GiB": "-", "method": method,
                 "max rel. diff": f"{difference:.2e}"})
    retried_once = len(tried) > 1 and tried[0] == batch and tried[1] < batch
    if not retried_once:
        notes.append("the cap did not force an out-of-memory error: the retry path did not run")
    # other batch sizes may pick other cuDNN algorithms (TF32): the same bound as CUDA against the CPU
    ok = retried_once and difference <= FP32_TOLERANCE and bool(np.isfinite(retried).all())
    return Section(PASS if ok else FAIL, f"batch sizes tried {tried}; same images within {difference:.1e}",
                   rows, notes)


# ---------------------------------------------------------------------------------------------------------
# ddp: a 1-process process group (NCCL on the GPU), the generator under DistributedDataParallel, one step

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_ddp(options: CheckOptions) -> Section:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from benchmarks.bench_model import cine_slice
    from model.checkpoint import load_generator

    device = options.device
    if device.type == "cuda":
        torch.cuda.set_device(0)              # NCCL binds the process group to the current device
    started = time.monotonic()
    dist.init_process_group(options.backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=120))
    try:
        init_seconds = time.monotonic() - started
        generator, _ = load_generator(options.weights, device)
        model = DistributedDataParallel(generator.train(), device_ids=[0] if device.type == "cuda" else None,
                                        find_unused_parameters=True)     # as training.trainer wraps it
        kspace, mask = cine_slice(1, options.coils, options.height, options.width, device,
                                  generator.config.adjacent_frames)
        step_started = time.monotonic()
        output = model(kspace, mask, 16, False, kspace.mean(dim=1))
        output.image.mean().backward()
        synchronize(device)
        step_seconds = time.monotonic() - step_started
        grads = [p.grad for p in generator.parameters() if p.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        value = torch.ones(1, device=device)
        dist.all_reduce(value)
        dist.barrier(device_ids=[0] if device.type == "cuda" else None)
        reduced = float(value.item())
    finally:
        dist.destroy_process_group()
    rows = [{"backend": options.backend, "init (s)": f"{init_seconds:.1f}", "step (s)": f"{step_seconds:.2f}",
             "parameters with gradients": len(grads), "gradients finite": str(finite),
             "all_reduce(1)": f"{reduced:g}"}]
    ok = finite and bool(grads) and reduced == 1.0
    return Section(PASS if ok else FAIL, f"{options.backend} group of 1 process: DDP step and all_reduce", rows)


# ---------------------------------------------------------------------------------------------------------
# training: Trainer steps with AMP (GradScaler) on simulated windows

def dry_samplers(config) -> tuple:
    """(domains, training sampler, validation sampler, summary) over one small phantom cine: the dry run's
    windows in milliseconds (the real sampler simulates native-size acquisitions)."""
    from simulation.phantom import phantom_series
    from simulation.realistic import Acquisition
    from training.simulated import SimulatedSampler, SourceSeries, domain_names

    series = [SourceSeries(phantom_series("cine", 8, 32, 40, np.random.default_rng(0)), "Phantom", "P001")]
    sampler = SimulatedSampler(series, domain_names(series), Acquisition(measured_coils=0.0, coil_counts=(4,)),
                               dict(config.kind_weights), acs_choices=(16,), window=config.adjacent_frames)
    return domain_names(series), sampler, sampler, {"source": "dry-run phantom"}


def check_training(options: CheckOptions) -> Section:
    from training.config import PRESETS
    from training.trainer import Trainer

    config = dataclasses.replace(PRESETS["cpu"], model=options.train_model, amp=True, epochs=1,
                                 steps_per_epoch=options.train_steps, val_samples=1 if options.dry else 2,
                                 crop_width=options.train_crop,
                                 log_every=1)
    run_dir = options.work / "training"
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = Trainer(config, None, run_dir, device=str(options.device), workers=options.workers,
                      samplers=dry_samplers(config) if options.dry else None)
    reset_peak(options.device)
    started = time.monotonic()
    minutes = max(options.seconds_left() - 30, 10) / 60      # leave time to validate and checkpoint
    result = trainer.fit(max_minutes=minutes + (time.time() - trainer.started) / 60)
    seconds = time.monotonic() - started
    with open(run_dir / "train_log.csv") as log:
        import csv
        steps = list(csv.DictReader(log))
    finite = all(math.isfinite(float(row["total"])) for row in steps)
    peak = peak_gib(options.device)
    scale = trainer.scaler.get_scale() if trainer.scaler.is_enabled() else None
    rows = [{"model": options.train_model, "steps": result["steps"], "wall (s, incl. validation)": f"{seconds:.1f}",
             "s / step": f"{seconds / max(result['steps'], 1):.2f}", "losses finite": str(finite),
             "GradScaler scale": "off (cpu)" if scale is None else f"{scale:g}",
             "peak GiB": "-" if peak is None else f"{peak:.2f}",
             "val SSIM": f"{result['history'][-1].get('val_ssim', math.nan):.4f}"}]
    notes = [f"TrainConfig preset cpu with model {options.train_model}, amp on, crop width "
             f"{options.train_crop or 'whole readout'}, {options.workers} loader workers; windows: "
             + ("a small phantom (dry run)" if options.dry else "training.simulated (the shipped recipe's)")]
    ok = result["steps"] == options.train_steps and finite and (scale is None or scale > 0)
    return Section(PASS if ok else FAIL, f"{result['steps']} of {options.train_steps} AMP steps, losses finite: "
                   f"{finite}", rows, notes)


# ---------------------------------------------------------------------------------------------------------
# rates: does the loader keep up? Windows per second one AMP training step consumes (shipped and paper
# generators, compute alone: the same window on the device again and again) against windows per second the
# simulated-window DataLoader produces with 0 to N worker processes.

def time_train_steps(trainer, sample, steps: int, device: torch.device) -> float:
    """Seconds per train_step on one window already on ``device``, after one warm-up step."""
    sample = trainer.to_device(sample)
    trainer.train_step(sample)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(sample)
    synchronize(device)
    return (time.perf_counter() - started) / steps


def check_rates(options: CheckOptions) -> Section:
    from training.config import PRESETS
    from training.trainer import Trainer, simulated_samplers
    from benchmarks.loader_rate import time_loader
    from training.loader import epoch_loader

    device, rows, notes = options.device, [], []
    shipped = PRESETS["cpu"]
    config = dataclasses.replace(shipped, amp=True, val_samples=1, crop_width=options.train_crop)
    samplers = dry_samplers(config) if options.dry else simulated_samplers(config)
    sample = next(iter(epoch_loader(samplers[1], (8,), 1, config.seed, 0, 0, 0)))
    consumed = {}
    for label, model in (("shipped", shipped.model), ("paper", options.train_model)):
        if options.seconds_left() < 15:
            notes.append(f"{label} step rate: not run, time budget used up")
            continue
        trainer = Trainer(dataclasses.replace(config, model=model), None, options.work / "rates", device=str(device),
                          samplers=samplers)
        reset_peak(device)
        seconds = time_train_steps(trainer, sample, options.rate_steps, device)
        peak = peak_gib(device)
        consumed[label] = 1 / seconds
        rows.append({"measure": f"AMP train step, {label} ({model})", "workers": "-",
                     "s / window": f"{seconds:.3f}", "windows/s": f"{1 / seconds:.2f}",
                     "peak GiB": "-" if peak is None else f"{peak:.2f}", "first window (s)": "-"})
        del trainer
    produced = {}
    for workers in options.loader_workers:
        windows = max(4, 3 * workers)
        if options.seconds_left() < 15:
            notes.append(f"loader with {workers} workers and more: not run, time budget used up")
            break
        timed = time_loader(epoch_loader(samplers[1], (8, 16, 24), windows, config.seed, 0, 0, workers,
                                         pin_memory=device.type == "cuda"))
        first, rate = timed.first_s, timed.windows_per_s
        produced[workers] = rate
        rows.append({"measure": f"loader, {windows} windows", "workers": workers,
                     "s / window": f"{1 / rate:.3f}", "windows/s": f"{rate:.2f}", "peak GiB": "-",
                     "first window (s)": f"{first:.1f}"})
    shape = tuple(sample.masked_kspace.shape)
    notes.append(f"window: {shape} (batch, frames, coils, ky, readout crop) complex64, the cpu preset's simulated "
                 f"acquisitions with readout crop {options.train_crop or 'none'}; {options.rate_steps} timed steps "
                 f"after one warm-up; the loader's rate excludes the wait for its first window (worker start)")
    for label, rate in consumed.items():
        enough = [w for w, r in produced.items() if r >= rate]
        notes.append(f"{label}: one step consumes {rate:.2f} windows/s; " +
                     (f"the loader keeps up from {min(enough)} workers" if enough else
                      f"no worker count measured keeps up (best {max(produced.values(), default=0):.2f} windows/s"
                      f" with {max(produced, key=produced.get, default='-')} workers)"))
    ok = len(consumed) == 2 and bool(produced) and all(math.isfinite(r) and r > 0 for r in
                                                        [*consumed.values(), *produced.values()])
    return Section(PASS if ok else FAIL, "; ".join(notes[-len(consumed):]) if consumed else "no step measured",
                   rows, notes)


# the quick GPU-only checks first; predict (a CPU reference run of every sample tree) takes what is left
CHECKS = {"environment": check_environment, "ddp": check_ddp, "oom_retry": check_oom_retry,
          "throughput": check_throughput, "training": check_training, "rates": check_rates,
          "predict": check_predict}
