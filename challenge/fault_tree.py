"""A fault tree for predict.py: damaged and surprising CMRxRecon inputs, the outcome each must get, a checker.

    python -m challenge.fault_tree OUT          # build the trees under OUT and OUT/expected.json
    python -m challenge.fault_tree --run OUT    # build, run predict.py over them, check, print a table

The trees follow the 2024 layout and hold small simulated volumes written with challenge.matio and masks from
challenge.masks. They are grouped in scenarios, one run each:

- main: every kind of bad file beside valid ones (truncated HDF5, non-MAT, empty, MAT v5, missing or extra
  keys, real data, 3-D data, NaN/Inf, all zero, missing, corrupt or wrong-shaped mask, 1x1x1, odd sizes, 4-D,
  symlink loops, symlinked inputs, empty folders, ._ files, a copy mapping to the same output), run with
  ``predict.py --method cgsense`` under a read-only input root;
- resume: the main run's output damaged (truncated, garbage, wrong shape, deleted, temporaries), ``--resume``;
- injected: runner.run in this process with a model that raises mid-volume, returns NaN or hits a CUDA
  out-of-memory once, and a volume that must be read in slabs within a memory bound;
- bad_weights: ``--method genre`` with weights whose sha256 does not match their record;
- permissions: an unreadable file, folder and mask (needs file permissions to bind: not root, or setpriv);
- empty_root, output_is_under_a_file, output_read_only: runs that must stop with a clear message.

expected.json lists every scenario (arguments, exit status, messages) and every case (its input, output,
expected outcome 'model' / 'fallback' / 'failed' / 'resumed' / 'absent' and the substring its reason or note
must hold). The checker compares a run's run_report.json, exit status, output files and input tree with it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import scipy.io

from challenge import masks, matio, rules
from challenge.report import BY_FALLBACK, BY_MODEL, FAILED, RESUMED, VALID_OUTCOMES

REPO = Path(__file__).resolve().parent.parent
EXPECTED_NAME = "expected.json"
ABSENT = "absent"                  # a case that must produce no report row (a loop, an empty folder)
SHAPE = (3, 2, 4, 32, 40)          # (nt, nz, nc, ny, nx): small, 16 ACS lines fit
ACS = rules.ACS_LINES[2024]
LARGE_SHAPE = (2, 24, 8, 128, 128)     # 50 MB of k-space ...
SLAB_BYTES = 2 * 8 * 128 * 128 * 8     # ... read one slice (2 MB) at a time
SCENARIO_DIRS = ("main", "injected", "bad_weights", "permissions", "empty_root", "blocker", "runs")
PREDICT_TIMEOUT_S = 600


@dataclass
class Case:
    """One input (or folder) and what the run must do with it."""
    name: str
    scenario: str
    description: str
    input: str                        # relative to the scenario's input root
    outcome: str                      # model | fallback | failed | resumed | absent
    output: str | None = None         # relative to the output root
    output_shape: list[int] | None = None
    reason: str | None = None         # substring of the row's reason
    note: str | None = None           # substring of one of the row's notes
    method: str | None = None         # the method that wrote the output
    fault: str | None = None          # injected model fault (see FaultyModel)


@dataclass
class Scenario:
    """One run of predict.py (or of runner.run with an injected model) and what it must end with."""
    name: str
    description: str
    input_root: str                   # relative to OUT
    output_root: str                  # relative to OUT
    exit_code: int
    arguments: list[str] = field(default_factory=list)   # predict.py arguments besides --input/--output;
                                                          # '{out}' stands for the fault tree's folder
    report: bool = True               # a run_report.json must be written
    message: str | None = None        # substring of the run's output or the report's error
    run_note: str | None = None       # substring of one of the report's notes
    primary_method: str | None = None
    in_process: bool = False          # runner.run with the fault-injecting model instead of predict.py
    needs_permissions: bool = False   # only meaningful where file permissions bind
    damage: dict[str, str] = field(default_factory=dict)  # output relative -> truncate|garbage|wrong_shape|delete
    temporaries: list[str] = field(default_factory=list)  # left-over temporary files to plant (relative)
    copy_output_of: str | None = None # start from a copy of this scenario's output root
    unreadable: list[str] = field(default_factory=list)   # input paths given mode 000 for the run
    read_only_output: bool = False    # the output root has mode 555 for the run
    max_slab_bytes: int | None = None
    max_traced_bytes: int | None = None  # peak numpy memory of an in-process run must stay below this


# ---------------------------------------------------------------------------------------------------------
# simulated volumes

def centred_fft2(image: np.ndarray) -> np.ndarray:
    """MATLAB-centred orthonormal 2-D FFT over the last two axes."""
    shifted = np.fft.ifftshift(image, axes=(-2, -1))
    return np.fft.fftshift(np.fft.fft2(shifted, norm="ortho"), axes=(-2, -1))


def simulated_kspace(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Fully sampled k-space (nt, nz, nc, ny, nx) complex64 of a beating two-ellipse phantom seen by nc
    Gaussian coils, plus a little noise."""
    nt, nz, nc, ny, nx = shape
    rng = np.random.default_rng(seed)
    y = np.linspace(-1, 1, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, :]
    phase = 2 * np.pi * np.arange(nt, dtype=np.float32)[:, None, None, None] / nt
    slice_offset = 0.05 * np.arange(nz, dtype=np.float32)[None, :, None, None]
    radius = 0.35 + 0.08 * np.sin(phase) + slice_offset
    body = 0.5 * ((x / 0.85) ** 2 + (y / 0.95) ** 2 < 1)
    heart = 1.0 * ((x - 0.1) ** 2 + y ** 2 < radius ** 2)
    image = (body + heart).astype(np.complex64)                       # (nt, nz, ny, nx)
    angles = 2 * np.pi * np.arange(nc) / nc + rng.uniform(0, 0.3)
    centres = 1.3 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    sens = np.stack([np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 1.5) * np.exp(1j * (cx * x + cy * y))
                     for cx, cy in centres]).astype(np.complex64)       # (nc, ny, nx)
    kspace = centred_fft2(image[:, :, None] * sens[None, None]).astype(np.complex64)
    noise = rng.standard_normal(kspace.shape, np.float32) + 1j * rng.standard_normal(kspace.shape, np.float32)
    return kspace + np.complex64(1e-3) * noise


def sampling_mask(pattern: str, shape: tuple[int, ...], rate: int, seed: int) -> np.ndarray:
    """The organisers' mask for a 2024 file as it is stored: (ny, nx) for Uniform, (nt, ny, nx) for k-t."""
    nt, ny, nx = shape[0], shape[-2], shape[-1]
    mask = masks.make_mask(pattern, nt, ny, nx, rate, ACS, np.random.default_rng(seed))
    return mask[0] if pattern == "Uniform" else mask


# ---------------------------------------------------------------------------------------------------------
# building the trees

class _TreeWriter:
    """Writes 2024-layout inputs (+ masks) under one scenario's input root and records their cases."""

    def __init__(self, root: Path, scenario: str, cases: list[Case]):
        self.root, self.scenario, self.cases = root, scenario, cases
        self.seed = 0

    def paths(self, patient: str, base: str = "cine_sax", pattern: str = "Uniform", rate: int = 4,
              modality: str = "Cine") -> tuple[Path, Path]:
        task = "Task1" if pattern == "Uniform" else "Task2"
        split = self.root / modality / "TestSet"
        return (split / f"UnderSample_{task}" / patient / f"{base}_kus_{pattern}{rate}.mat",
                split / f"Mask_{task}" / patient / f"{base}_mask_{pattern}{rate}.mat")

    def volume(self, name: str, description: str, patient: str, *, outcome: str = BY_MODEL,
               base: str = "cine_sax", pattern: str = "Uniform", rate: int = 4, modality: str = "Cine",
               shape: tuple[int, ...] = SHAPE, write_mask: bool = True,
               **expectations) -> tuple[Path, Path, np.ndarray]:
        """Write one valid input and its mask; returns (input path, mask path, undersampled k-space in h5py
        order). Callers damage the files afterwards."""
        self.seed += 1
        input_path, mask_path = self.paths(patient, base, pattern, rate, modality)
        has_time_axis = len(shape) == 5
        full_shape = shape if has_time_axis else (1, *shape)
        mask = sampling_mask(pattern, full_shape, rate, self.seed)
        kspace = simulated_kspace(full_shape, self.seed)
        kspace *= np.broadcast_to(mask, (full_shape[0], *mask.shape[-2:]))[:, None, None]
        if not has_time_axis:
            kspace = kspace[0]
        input_path.parent.mkdir(parents=True, exist_ok=True)
        matio.write_kspace_v73(input_path, "kus", kspace)
        if write_mask:
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            matio.write_mask_v73(mask_path, "mask", mask.astype(np.float64))
        self.expect(name, description, input_path, outcome, kspace_shape=shape, has_time_axis=has_time_axis,
                    **expectations)
        return input_path, mask_path, kspace

    def expect(self, name: str, description: str, input_path: Path, outcome: str,
               kspace_shape: tuple[int, ...] | None = None, has_time_axis: bool = True, **expectations) -> None:
        output = shape = None
        job = rules.parse_job(self.root, input_path) if input_path.suffix == ".mat" else None
        if job is not None and outcome != ABSENT:
            output = str(job.output_relative)
            if kspace_shape is not None:
                shape = list(rules.expected_output_shape(job, kspace_shape, has_time_axis))
        self.cases.append(Case(name=name, scenario=self.scenario, description=description,
                               input=str(PurePosixPath(*input_path.relative_to(self.root).parts)),
                               outcome=outcome, output=output, output_shape=shape, **expectations))


def _write_main(root: Path, cases: list[Case]) -> None:
    tree = _TreeWriter(root, "main", cases)
    tree.volume("valid_uniform", "a valid Uniform4 cine volume", "P001")
    tree.volume("valid_ktgaussian", "a valid ktGaussian8 volume with a k-t mask", "P001", base="cine_lax",
                pattern="ktGaussian", rate=8)

    path, _, _ = tree.volume("truncated_hdf5", "HDF5 file cut at 60 % of its bytes", "P002", outcome=FAILED,
                             reason="cine_sax_kus_Uniform4.mat")
    with open(path, "r+b") as stream:
        stream.truncate(int(path.stat().st_size * 0.6))

    path, _, _ = tree.volume("not_a_mat_file", "a text file named .mat", "P003", outcome=FAILED,
                             reason="cine_sax_kus_Uniform4.mat")
    path.write_text("patient notes, not k-space\n" * 40)

    path, _, kspace = tree.volume("mat_v5", "MAT v5 (scipy.io.savemat) where v7.3 is usual", "P004")
    matio.write_kspace_v5(path, "kus", kspace)

    path, _, kspace = tree.volume("missing_kus_key", "k-space saved under 'kspace' instead of 'kus'", "P005",
                                  outcome=FAILED, reason="kus")
    path.unlink()
    matio.write_kspace_v73(path, "kspace", kspace)

    path, _, _ = tree.volume("extra_keys", "'kus' beside unexpected extra variables", "P006")
    with h5py.File(path, "a") as file:
        file["info"] = np.arange(5, dtype=np.float64)
        file["kspace_full"] = np.zeros((2, 3), np.float64)

    path, _, kspace = tree.volume("real_valued", "k-space stored as real float32 instead of complex", "P007",
                                  note="real-valued")
    with h5py.File(path, "a") as file:
        del file["kus"]
        file["kus"] = kspace.real.astype(np.float32)
        file["kus"].attrs["MATLAB_class"] = np.bytes_("single")

    path, _, kspace = tree.volume("nan_inf", "NaN and Inf samples in k-space", "P008", note="non-finite")
    kspace = kspace.copy()
    kspace[0, 0, 0, SHAPE[3] // 2, :3] = np.nan
    kspace[1, 1, 2, SHAPE[3] // 2, 5] = np.inf
    matio.write_kspace_v73(path, "kus", kspace)

    path, _, kspace = tree.volume("all_zero", "k-space that holds only zeros", "P009", outcome=FAILED,
                                  reason="all zero")
    matio.write_kspace_v73(path, "kus", np.zeros_like(kspace))

    tree.volume("missing_mask", "no mask file beside the input", "P010", write_mask=False, note="missing")

    _, mask_path, _ = tree.volume("mask_wrong_shape", "a mask of the wrong shape", "P011", note="shape")
    matio.write_mask_v73(mask_path, "mask", np.ones((7, 9)))

    tree.volume("single_frame_slice_coil", "1 frame, 1 slice, 1 coil", "P012", shape=(1, 1, 1, 32, 40))
    tree.volume("odd_matrix", "odd matrix sizes 33 x 27", "P013", shape=(3, 2, 3, 33, 27))
    tree.volume("four_d", "4-D (nz, nc, ny, nx) BlackBlood data where 5-D is usual", "P014",
                base="blackblood", modality="BlackBlood", shape=(2, 4, 32, 40))

    loop = tree.paths("P015")[0]
    loop.parent.mkdir(parents=True)
    loop.symlink_to(loop.name)
    tree.expect("symlink_self_loop", "an input name that is a symlink to itself", loop, FAILED,
                reason="symbolic links")

    parent_loop = root / "Cine" / "TestSet" / "UnderSample_Task1" / "P001" / "loop"
    parent_loop.symlink_to("../..")
    tree.expect("symlink_loop", "a folder symlink to an ancestor (walked once, no duplicate rows)",
                parent_loop, ABSENT)

    for folder in (root / "Cine" / "TestSet" / "UnderSample_Task1" / "P016", root / "Mapping" / "TestSet",
                   root / "Cine" / "TestSet" / "Mask_Task2" / "P099" / "empty"):
        folder.mkdir(parents=True)
    tree.expect("empty_folders", "empty patient and modality folders", root / "Mapping" / "TestSet", ABSENT)

    path, _, _ = tree.volume("empty_file", "a 0-byte file named as an input", "P017", outcome=FAILED,
                             reason="cine_sax_kus_Uniform4.mat")
    path.write_bytes(b"")

    path, _, kspace = tree.volume("wrong_rank", "3-D k-space (one coil image stack)", "P018", outcome=FAILED,
                                  reason="dimensions")
    matio.write_kspace_v73(path, "kus", kspace[0, 0])

    _, mask_path, _ = tree.volume("corrupt_mask", "a mask file that is not a MAT file", "P019", note="unreadable")
    mask_path.write_bytes(b"\x89HDF but not really" * 8)

    target, _, _ = tree.volume("symlinked_target", "a valid file that a symlink elsewhere points to", "P020")
    link = tree.paths("P021")[0]
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(target, link.parent))
    tree.expect("symlinked_input", "an input that is a symlink to a valid file (its mask derived)", link,
                BY_MODEL, kspace_shape=SHAPE, note="missing")

    apple = tree.paths("P001")[0].with_name("._cine_sax_kus_Uniform4.mat")
    apple.write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    tree.expect("appledouble", "a macOS ._ metadata file beside an input", apple, ABSENT)

    copy = root / "backup" / tree.paths("P001")[0].relative_to(root)
    copy.parent.mkdir(parents=True)
    shutil.copyfile(tree.paths("P001")[0], copy)
    tree.expect("duplicate_output", "a nested copy of an input that maps to the same output file", copy, FAILED,
                reason="same output path")


def _write_injected(root: Path, cases: list[Case]) -> None:
    tree = _TreeWriter(root, "injected", cases)
    tree.volume("model_raises_mid_volume", "the model raises after the first slice of a volume", "P001",
                outcome=BY_FALLBACK, method="cgsense", reason="injected failure", fault="raise_mid_volume",
                shape=(3, 3, 4, 32, 40))
    tree.volume("model_returns_nan", "the model returns NaN in one slice", "P002", outcome=BY_FALLBACK,
                method="cgsense", reason="non-finite", fault="nan")
    tree.volume("cuda_out_of_memory", "CUDA out-of-memory on the first call, success with half the batch",
                "P003", method="genre", note="out of memory", fault="cuda_oom_once")
    tree.volume("large_matrix_in_slabs", "50 MB of k-space read and reconstructed one 2 MB slab at a time",
                "P004", shape=LARGE_SHAPE, method="genre")
    tree.volume("model_raises_in_second_slab", "the model raises in the second slab of a slabbed volume",
                "P005", shape=(2, 4, 8, 128, 128), outcome=BY_FALLBACK, method="genre+cgsense",
                reason="injected failure", fault="raise_second_slab")


def _write_bad_weights(scenario_root: Path, cases: list[Case]) -> Path:
    """One valid input and a checkpoint whose sha256 does not match its record; returns the .pt path."""
    tree = _TreeWriter(scenario_root / "input", "bad_weights", cases)
    tree.volume("weights_sha256_mismatch", "weights refused (sha256 mismatch), CG-SENSE used", "P001",
                method="cgsense")
    weights = scenario_root / "weights" / "genre_cmr.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not the trained generator" * 100)
    record = {"file": weights.name, "sha256": "0" * 64, "note": "record of a different file"}
    weights.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return weights


def _write_permissions(root: Path, cases: list[Case]) -> list[str]:
    """Returns the paths (relative to root) that the run makes unreadable (mode 000 during the run only, so
    that the built tree stays removable by its owner)."""
    tree = _TreeWriter(root, "permissions", cases)
    tree.volume("readable_beside_unreadable", "a valid file beside unreadable ones", "P001")
    path, _, _ = tree.volume("unreadable_file", "an input file with mode 000", "P002", outcome=FAILED,
                             reason="ermission denied")
    folder = root / "Cine" / "TestSet" / "UnderSample_Task1" / "P003"
    tree.paths("P003")[0].parent.mkdir(parents=True)
    matio.write_kspace_v73(tree.paths("P003")[0], "kus", simulated_kspace(SHAPE, 99))
    tree.expect("unreadable_folder", "a patient folder with mode 000", folder, FAILED, reason="ermission denied")
    _, mask_path, _ = tree.volume("unreadable_mask", "a mask file with mode 000 (mask derived)", "P004",
                                  note="unreadable")
    return [str(PurePosixPath(*p.relative_to(root).parts)) for p in (path, folder, mask_path)]


def build_fault_tree(out: Path) -> dict:
    """Write every scenario's input tree under ``out`` and ``out/expected.json``; returns its contents."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SCENARIO_DIRS:
        remove_tree(out / name)
    cases: list[Case] = []
    _write_main(out / "main" / "input", cases)
    _write_injected(out / "injected" / "input", cases)
    weights = _write_bad_weights(out / "bad_weights", cases)
    unreadable = _write_permissions(out / "permissions" / "input", cases)
    for folder in ("Cine/TestSet/UnderSample_Task1/P001", "Mapping/TestSet/UnderSample_Task2"):
        (out / "empty_root" / "input" / folder).mkdir(parents=True)
    (out / "blocker").mkdir()
    (out / "blocker" / "a_file").write_text("an output root cannot live under a file\n")
    (out / "runs" / "output_read_only").mkdir(parents=True)

    damage = {
        _output_of(cases, "valid_uniform"): "truncate",       # a partial output of a killed run
        _output_of(cases, "mat_v5"): "garbage",
        _output_of(cases, "extra_keys"): "wrong_shape",
        _output_of(cases, "odd_matrix"): "delete",
    }
    for case in [c for c in cases if c.scenario == "main"]:
        resumed = Case(**{**asdict(case), "scenario": "resume", "name": case.name})
        if case.outcome in VALID_OUTCOMES and case.output not in damage:
            resumed.outcome, resumed.note, resumed.method, resumed.reason = RESUMED, None, None, None
        elif case.output in damage:
            resumed.description = f"{case.description}; output damaged ({damage[case.output]}), redone"
        cases.append(resumed)
    # what a killed run leaves: matio's temporaries beside two outputs, the report's temporary
    temporaries = [str(PurePosixPath(matio.temporary_path(Path(_output_of(cases, name)))))
                   for name in ("valid_ktgaussian", "nan_inf")] + ["run_report.json.tmp"]

    cgsense = ["--method", "cgsense", "--device", "cpu"]
    scenarios = [
        Scenario("main", "every kind of bad input beside valid ones, read-only input root", "main/input",
                 "runs/main", exit_code=1, arguments=cgsense, primary_method="cgsense"),
        Scenario("resume", "partial, corrupt, missing and temporary outputs of an earlier run, --resume",
                 "main/input", "runs/resume", exit_code=1, arguments=[*cgsense, "--resume"], damage=damage,
                 temporaries=temporaries, copy_output_of="main"),
        Scenario("injected", "a model that raises, returns NaN, runs out of CUDA memory; slabbed volumes",
                 "injected/input", "runs/injected", exit_code=0, in_process=True, primary_method="genre",
                 max_slab_bytes=SLAB_BYTES, max_traced_bytes=int(np.prod(LARGE_SHAPE)) * 8 // 2),
        Scenario("bad_weights", "GENRE weights whose sha256 does not match their record", "bad_weights/input",
                 "runs/bad_weights", exit_code=0,
                 arguments=["--method", "genre", "--device", "cpu", "--weights",
                            "{out}/" + str(PurePosixPath(*weights.relative_to(out).parts))],
                 run_note="sha256", primary_method="cgsense"),
        Scenario("permissions", "an unreadable file, folder and mask", "permissions/input",
                 "runs/permissions", exit_code=1, arguments=cgsense, needs_permissions=True,
                 unreadable=unreadable),
        Scenario("empty_root", "an input root holding only empty folders", "empty_root/input",
                 "runs/empty_root", exit_code=1, arguments=cgsense, message="no files to reconstruct"),
        Scenario("output_is_under_a_file", "an output root below a regular file", "main/input",
                 "blocker/a_file/output", exit_code=2, arguments=cgsense, report=False, message="not writable"),
        Scenario("output_read_only", "an output root without write permission", "main/input",
                 "runs/output_read_only", exit_code=2, arguments=cgsense, report=False, message="not writable",
                 read_only_output=True, needs_permissions=True),
    ]
    expected = {"year": 2024, "scenarios": [asdict(s) for s in scenarios], "cases": [asdict(c) for c in cases]}
    (out / EXPECTED_NAME).write_text(json.dumps(expected, indent=1) + "\n")
    return expected


def _output_of(cases: list[Case], name: str) -> str:
    return next(case.output for case in cases if case.name == name)


def load_expected(out: Path) -> tuple[list[Scenario], list[Case]]:
    saved = json.loads((Path(out) / EXPECTED_NAME).read_text())
    return [Scenario(**s) for s in saved["scenarios"]], [Case(**c) for c in saved["cases"]]


def remove_tree(path: Path) -> None:
    """rmtree that first gives back the permissions the fault tree took away (mode 000, read-only)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.chmod(0o755)
        for folder, dirs, _ in os.walk(path):     # top-down: each folder is opened before its walk enters it
            for name in dirs:
                if not (Path(folder) / name).is_symlink():
                    (Path(folder) / name).chmod(0o755)
        shutil.rmtree(path)


# ---------------------------------------------------------------------------------------------------------
# permissions

def permission_prefix() -> list[str] | None:
    """Command prefix under which file permissions bind for a child process, or None where they cannot.

    Not root: none needed. Root: setpriv dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding
    set (root then obeys mode bits like any owner), if setpriv exists and a probe confirms it.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            finished = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r})"],
                                      capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
    return prefix if "PermissionError" in finished.stderr else None


class _ReadOnly:
    """chmod -R a-w over a tree for the duration of a run (modes restored after); ``active`` False: nothing."""

    def __init__(self, root: Path, active: bool = True):
        self.root, self.active = root, active
        self.modes: dict[Path, int] = {}

    def __enter__(self):
        if not self.active:
            return self
        for path in [self.root, *_walk(self.root)]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                self.modes[path] = stat.S_IMODE(mode)
                path.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return self

    def __exit__(self, *exc):
        for path, mode in self.modes.items():
            path.chmod(mode)


def _walk(root: Path) -> list[Path]:
    """Every path under root without following symlinks; unreadable folders are listed, not entered."""
    found = []
    for folder, dirs, files in os.walk(root):
        found += [Path(folder) / name for name in dirs + files]
    return found


def snapshot(root: Path) -> dict[str, tuple]:
    """(type, mode, size, mtime) of every path under root, symlinks not followed."""
    result = {}
    for path in [root, *_walk(root)]:
        info = path.lstat()
        result[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                               info.st_size, info.st_mtime_ns)
    return result


# ---------------------------------------------------------------------------------------------------------
# the model with injected faults (in-process scenario)

class FaultyModel:
    """Stands in for the GENRE network: zero-filled underneath (fast), with a fault on chosen files.

    faults: meta.name (input path relative to the root) -> 'raise_mid_volume' (raises after the first slice),
    'raise_second_slab' (raises on the second call for the file), 'nan' (NaN in the output), 'cuda_oom_once'
    (torch.cuda.OutOfMemoryError on the first call; the runner must retry with a smaller batch).
    """
    name = "genre"

    def __init__(self, inner, faults: dict[str, str], batch_size: int = 8):
        self.inner, self.faults, self.batch_size = inner, faults, batch_size
        self.calls: dict[str, int] = {}
        self.out_of_memory_batch_sizes: list[int] = []
        self.largest_call_bytes = 0

    def reconstruct(self, kspace, mask, meta, progress=None):
        import torch

        self.calls[meta.name] = self.calls.get(meta.name, 0) + 1
        self.largest_call_bytes = max(self.largest_call_bytes, kspace.nbytes)
        fault = self.faults.get(meta.name)
        if fault == "cuda_oom_once" and not self.out_of_memory_batch_sizes:
            self.out_of_memory_batch_sizes.append(self.batch_size)
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB (injected, batch size {self.batch_size})")
        if fault == "raise_mid_volume":
            self.inner.reconstruct(kspace[:, :1], mask, meta, progress)
            raise RuntimeError(f"injected failure in {meta.name} after slice 1 of {kspace.shape[1]}")
        if fault == "raise_second_slab" and self.calls[meta.name] == 2:
            raise RuntimeError(f"injected failure in the second slab of {meta.name}")
        image = self.inner.reconstruct(kspace, mask, meta, progress)
        if fault == "nan":
            image = image.copy()
            image[:, -1] = np.nan
        return image


def faulty_factory(faults: dict[str, str]):
    """reconstructor_factory for runner.run: 'genre' is a FaultyModel, the fallbacks are the real ones."""
    from model.reconstruction import build_reconstructor

    model = FaultyModel(build_reconstructor("zerofilled", device="cpu"), faults)

    def factory(method: str):
        return model if method == "genre" else build_reconstructor(method, device="cpu")
    factory.model = model
    return factory


# ---------------------------------------------------------------------------------------------------------
# running

@dataclass
class RunResult:
    scenario: str
    exit_code: int | None = None
    output_text: str = ""
    report: dict | None = None
    input_before: dict = field(default_factory=dict)
    input_after: dict = field(default_factory=dict)
    output_files: set[str] = field(default_factory=set)
    skipped: str | None = None         # why the scenario was not run
    details: dict = field(default_factory=dict)   # in-process measurements


def run_scenario(out: Path, scenario: Scenario, cases: list[Case], prefix: list[str] | None) -> RunResult:
    """Run one scenario (predict.py in a child process, or runner.run here) with its input root read-only."""
    out = Path(out)
    result = RunResult(scenario.name)
    if scenario.needs_permissions and prefix is None:
        result.skipped = "running as root without setpriv: file permissions do not bind"
        return result
    input_root, output_root = out / scenario.input_root, out / scenario.output_root
    if scenario.copy_output_of:
        source = next(s for s in load_expected(out)[0] if s.name == scenario.copy_output_of)
        remove_tree(output_root)
        shutil.copytree(out / source.output_root, output_root, symlinks=True)
        _damage_outputs(output_root, scenario)
    with _ReadOnly(input_root), _ReadOnly(output_root, scenario.read_only_output):
        for relative in scenario.unreadable:     # modes come back with _ReadOnly's exit
            (input_root / relative).chmod(0)
        result.input_before = snapshot(input_root)
        if scenario.in_process:
            _run_in_process(scenario, cases, input_root, output_root, result)
        else:
            command = [*(prefix or []), sys.executable, str(REPO / "predict.py"), "--input", str(input_root),
                       "--output", str(output_root), *(a.replace("{out}", str(out)) for a in scenario.arguments)]
            finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=PREDICT_TIMEOUT_S)
            result.exit_code, result.output_text = finished.returncode, finished.stdout + finished.stderr
        result.input_after = snapshot(input_root)
    report_path = output_root / "run_report.json"
    if output_root.is_dir():
        result.output_files = {str(PurePosixPath(*p.relative_to(output_root).parts))
                               for p in _walk(output_root) if not p.is_dir()}
        if report_path.is_file():
            result.report = json.loads(report_path.read_text())
    return result


def _damage_outputs(output_root: Path, scenario: Scenario) -> None:
    for relative, kind in scenario.damage.items():
        path = output_root / relative
        if kind == "truncate":
            with open(path, "r+b") as stream:
                stream.truncate(path.stat().st_size // 2)
        elif kind == "garbage":
            path.write_bytes(b"\x00garbage" * 64)
        elif kind == "wrong_shape":
            scipy.io.savemat(path, {"img4ranking": np.ones((5, 5), np.float32)})
        elif kind == "delete":
            path.unlink()
        else:
            raise ValueError(f"unknown damage {kind!r}")
    for relative in scenario.temporaries:
        (output_root / relative).parent.mkdir(parents=True, exist_ok=True)
        (output_root / relative).write_bytes(b"left over by a killed run")


def _run_in_process(scenario: Scenario, cases: list[Case], input_root: Path, output_root: Path,
                    result: RunResult) -> None:
    from challenge.runner import RunOptions, run

    faults = {case.input: case.fault for case in cases if case.scenario == scenario.name and case.fault}
    factory = faulty_factory(faults)
    options = RunOptions(input_root=input_root, output_root=output_root, method="genre", device="cpu",
                         max_slab_bytes=scenario.max_slab_bytes or RunOptions.max_slab_bytes)
    tracemalloc.start()
    try:
        report = run(options, reconstructor_factory=factory)
        result.details["peak_traced_bytes"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result.exit_code = report.exit_code
    result.output_text = report.format_text()
    model = factory.model
    result.details.update(largest_call_bytes=model.largest_call_bytes, calls=dict(model.calls),
                          out_of_memory_batch_sizes=model.out_of_memory_batch_sizes,
                          batch_size_after=model.batch_size)


# ---------------------------------------------------------------------------------------------------------
# checking

@dataclass
class Check:
    scenario: str
    case: str
    expected: str
    actual: str
    status: str = "ok"        # ok | MISMATCH | skip
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "MISMATCH"


def check_run(out: Path, scenario: Scenario, cases: list[Case], run: RunResult) -> list[Check]:
    """Every check of one scenario: run-wide ones (case '*') first, then one per case."""
    mine = [case for case in cases if case.scenario == scenario.name]
    if run.skipped:
        return [Check(scenario.name, case, "-", "-", "skip", run.skipped)
                for case in ["*", *(c.name for c in mine)]]
    checks = [_check_scenario(out, scenario, mine, run)]
    rows: dict[str, dict] = {}
    for row in (run.report or {}).get("files", []):
        rows.setdefault(row["input_relative"], row)
    output_root = Path(out) / scenario.output_root
    owned = {case.output for case in mine if case.outcome in VALID_OUTCOMES}   # another input's valid output
    checks += [_check_case(case, rows, output_root, run.output_text, owned) for case in mine]
    return checks


def _check_scenario(out: Path, scenario: Scenario, mine: list[Case], run: RunResult) -> Check:
    problems = []
    if run.exit_code != scenario.exit_code:
        problems.append(f"exit status {run.exit_code}, expected {scenario.exit_code}")
    report = run.report
    if scenario.report and report is None:
        problems.append("no run_report.json")
    if not scenario.report and report is not None:
        problems.append("a run_report.json was written")
    if report is not None:
        problems += _report_consistency(report, run.exit_code)
        rows = [row["input_relative"] for row in report["files"]]
        expected_rows = {case.input for case in mine if case.outcome != ABSENT}
        if len(rows) != len(set(rows)):
            problems.append("duplicate rows in the report")
        if set(rows) != expected_rows:
            problems.append(f"rows {sorted(set(rows) ^ expected_rows)} unexpected or missing")
        if scenario.primary_method and report["primary_method"] != scenario.primary_method:
            problems.append(f"primary method {report['primary_method']}, expected {scenario.primary_method}")
        if scenario.run_note and not any(scenario.run_note in note for note in report["notes"]):
            problems.append(f"no run note with {scenario.run_note!r}")
    if scenario.message and scenario.message not in run.output_text + str((report or {}).get("error")):
        problems.append(f"{scenario.message!r} not said")
    if run.input_before != run.input_after:
        changed = sorted(set(run.input_before.items()) ^ set(run.input_after.items()))
        problems.append(f"input root changed: {changed[:3]}")
    valid_outputs = {case.output for case in mine if case.outcome in VALID_OUTCOMES}
    leftovers = sorted(f for f in run.output_files
                       if f not in valid_outputs and f != "run_report.json")
    if leftovers:
        problems.append(f"unexpected files in the output root: {leftovers[:5]}")
    problems += _check_measurements(scenario, run)
    expected = f"exit {scenario.exit_code}" + ("" if scenario.report else ", no report")
    actual = f"exit {run.exit_code}" + ("" if report is not None else ", no report")
    return Check(scenario.name, "*", expected, actual, "MISMATCH" if problems else "ok",
                 "; ".join(problems) or scenario.description)


def _report_consistency(report: dict, exit_code: int | None) -> list[str]:
    """The JSON report must agree with itself and with the exit status."""
    problems = []
    files = report["files"]
    valid = sum(row["outcome"] in VALID_OUTCOMES for row in files)
    if report["exit_code"] != exit_code:
        problems.append(f"report says exit {report['exit_code']}, the run exited {exit_code}")
    if (report["files_total"], report["files_valid"]) != (len(files), valid):
        problems.append("files_total/files_valid disagree with the rows")
    if files and abs(report["success_rate"] - valid / len(files)) > 1e-9:
        problems.append("success_rate disagrees with the rows")
    should_exit = 0 if report["error"] is None and valid == len(files) else 1
    if report["exit_code"] != should_exit:
        problems.append(f"exit code {report['exit_code']} but {valid}/{len(files)} valid, error {report['error']}")
    failed = [{"file": row["input_relative"], "reason": row["reason"]} for row in files if row["outcome"] == FAILED]
    if report["failures"] != failed:
        problems.append("the failures list disagrees with the rows")
    return problems


def _check_measurements(scenario: Scenario, run: RunResult) -> list[str]:
    problems = []
    details = run.details
    if scenario.max_slab_bytes and details.get("largest_call_bytes", 0) > scenario.max_slab_bytes:
        problems.append(f"the model saw {details['largest_call_bytes']} bytes of k-space at once, "
                        f"bound {scenario.max_slab_bytes}")
    if scenario.max_traced_bytes and details.get("peak_traced_bytes", 0) > scenario.max_traced_bytes:
        problems.append(f"peak numpy memory {details['peak_traced_bytes']} above {scenario.max_traced_bytes}")
    return problems


def _check_case(case: Case, rows: dict[str, dict], output_root: Path, output_text: str,
                owned: set[str]) -> Check:
    if case.outcome == ABSENT:
        hits = [name for name in rows if name == case.input or name.startswith(case.input + "/")]
        return Check(case.scenario, case.name, ABSENT, "absent" if not hits else f"{len(hits)} rows",
                     "MISMATCH" if hits else "ok", case.description)
    row = rows.get(case.input)
    if row is None:
        return Check(case.scenario, case.name, case.outcome, "no row", "MISMATCH", case.input)
    problems = []
    if row["outcome"] != case.outcome:
        problems.append(f"outcome {row['outcome']} ({row['reason']})")
    if case.reason and case.reason not in (row["reason"] or ""):
        problems.append(f"reason {row['reason']!r} lacks {case.reason!r}")
    if case.note and not any(case.note in note for note in row["notes"]):
        problems.append(f"notes {row['notes']} lack {case.note!r}")
    if case.method and row["method"] != case.method:
        problems.append(f"method {row['method']}, expected {case.method}")
    if row["outcome"] in (FAILED, BY_FALLBACK) and not row["reason"]:
        problems.append("no reason given")
    if row["outcome"] in (FAILED, BY_FALLBACK) and not _said(output_text, case.input, row["reason"]):
        problems.append("the run's output has no line naming the file and its reason")
    if case.output is not None and (case.outcome in VALID_OUTCOMES or case.output not in owned):
        problems += _check_output(output_root / case.output, case)
    actual = row["outcome"] + (f" ({row['method']})" if row["method"] else "")
    detail = "; ".join(problems) or (row["reason"] or "; ".join(row["notes"]) or case.description)
    return Check(case.scenario, case.name, case.outcome, actual, "MISMATCH" if problems else "ok", detail)


def _said(text: str, name: str, reason: str | None) -> bool:
    """Some line of the run's output names the file and gives the reason (the organisers' only log)."""
    return bool(reason) and any(name in line and reason in line for line in text.splitlines())


def _check_output(path: Path, case: Case) -> list[str]:
    """A valid outcome needs a validated output (re-read with scipy); a failed one must leave none."""
    if case.outcome not in VALID_OUTCOMES:
        return [f"an output {path.name} exists for a failed input"] if path.exists() else []
    try:
        image = scipy.io.loadmat(path)["img4ranking"]
    except Exception as error:
        return [f"output unreadable: {type(error).__name__}: {error}"]
    problems = []
    if image.dtype != np.float32:
        problems.append(f"output dtype {image.dtype}")
    if case.output_shape is not None and list(image.shape) != case.output_shape:
        problems.append(f"output shape {image.shape}, expected {tuple(case.output_shape)}")
    if not np.isfinite(image).all() or not image.any():
        problems.append("output non-finite or all zero")
    return problems


def run_faults(out: Path, build: bool = True) -> list[Check]:
    """Build (unless told not to) and run every scenario; returns every check."""
    out = Path(out)
    if build:
        build_fault_tree(out)
    scenarios, cases = load_expected(out)
    prefix = permission_prefix()
    checks = []
    for scenario in scenarios:
        started = time.monotonic()
        run = run_scenario(out, scenario, cases, prefix)
        checks += check_run(out, scenario, cases, run)
        print(f"ran {scenario.name} in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return checks


def format_checks(checks: list[Check]) -> str:
    header = ("scenario", "case", "expected", "actual", "result", "detail")
    rows = [header, *((c.scenario, c.case, c.expected, c.actual, c.status, c.detail) for c in checks)]
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row[:5], widths)) + "  " + str(row[5])
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  ------")
    mismatches = sum(c.status == "MISMATCH" for c in checks)
    skipped = sum(c.status == "skip" for c in checks)
    lines.append(f"{len(checks)} checks: {len(checks) - mismatches - skipped} ok, {mismatches} mismatched, "
                 f"{skipped} skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the trees, expected.json and the runs' outputs")
    parser.add_argument("--run", action="store_true", help="also run predict.py over the trees and check")
    args = parser.parse_args(argv)
    if not args.run:
        expected = build_fault_tree(args.out)
        print(f"{len(expected['cases'])} cases in {len(expected['scenarios'])} scenarios under {args.out}; "
              f"see {args.out / EXPECTED_NAME}")
        return 0
    checks = run_faults(args.out)
    print(format_checks(checks))
    return 1 if any(not check.ok for check in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
