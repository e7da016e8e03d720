"""A fault tree for predict.py: damaged and surprising CMRxRecon inputs, the outcome each must get, a checker.

    python -m tools.fault_tree OUT          # build the trees under OUT and OUT/expected.json
    python -m tools.fault_tree --run OUT    # build, run predict.py over them, check, print a table

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
import re
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

from challenge import masks, matio, output_safety, rules
from challenge.report import BY_FALLBACK, BY_MODEL, FAILED, RESUMED, VALID_OUTCOMES

REPO = Path(__file__).resolve().parent.parent
EXPECTED_NAME = "expected.json"
ABSENT = "absent"                  # a case that must produce no report row (a loop, an empty folder)
SHAPE = (3, 2, 4, 32, 40)          # (nt, nz, nc, ny, nx): small, 16 ACS lines fit
ACS = rules.ACS_LINES[2024]
LARGE_SHAPE = (2, 24, 8, 128, 128)     # 50 MB of k-space ...
SLAB_BYTES = 2 * 8 * 128 * 128 * 8     # ... read one slice (2 MB) at a time
SCENARIO_DIRS = ("main", "injected", "bad_weights", "permissions", "empty_root", "blocker", "runs", "guard",
                 "nested_2023", "absurd", "small", "disk")
ABSURD_SHAPE = (12, 200, 2, 8192, 5000)   # (nt, nz, nc, ny, nx): the image alone is 366 GiB of float32
KEPT_NOTE = "validates and was kept"      # output_safety's note on an earlier output left at a failed input's path
PIPE_TIMEOUT_S = 300                      # a run into a closed pipe that takes longer than this has hung
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
    # issue 17: what surrounds the run
    plant: dict[str, str] = field(default_factory=dict)   # output relative -> folder | file | wrong_shape |
                                                          # link:<path relative to OUT> (made before the run)
    env: dict[str, str] = field(default_factory=dict)     # extra environment of the predict.py child
    pipe_lines: int | None = None     # stdout+stderr into a pipe closed after this many lines (`| head -N`)
    tmpfs_bytes: int | None = None    # the output root is a tmpfs of this size (needs mount; root)
    prerun: bool = False              # run once before (a valid earlier run), then the scenario's run
    disk_free_bytes: int | None = None  # fill the output filesystem after the prerun, leaving this much free
    needs_no_cuda: bool = False       # only meaningful where CUDA is absent


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


def _write_guard(root: Path, cases: list[Case]) -> dict[str, str]:
    """Issue 17's output-side faults on a 2024 tree: a folder where an output file goes, a file where an output
    patient folder goes, a link at an output path to its own input, a link of an output patient folder into
    the input root, a stale wrong-shape output of an input that fails. Returns the plant map."""
    tree = _TreeWriter(root, "guard", cases)
    tree.volume("valid_beside_blocked", "a valid file beside the blocked outputs", "P001")
    tree.volume("folder_at_output_file", "a folder sits where the output file goes (left as it is)", "P002",
                outcome=FAILED, reason="a folder sits at the output path")
    tree.volume("file_at_output_patient_folder", "a regular file sits where the output patient folder goes",
                "P003", outcome=FAILED, reason="writing")
    tree.volume("output_link_to_its_input", "a symlink at the output path pointing to the input itself", "P004",
                outcome=FAILED, reason="resolves to the input file")
    tree.volume("output_folder_linked_into_input", "the output patient folder is a symlink into the input root",
                "P005", outcome=FAILED, reason="resolves to the input file")
    tree.volume("output_folder_linked_into_input_root", "an output patient folder linked to an empty folder "
                "inside the input root", "P008", outcome=FAILED, reason="inside the input root")
    path, _, _ = tree.volume("stale_wrong_shape_of_failed_input", "a truncated input whose output path holds a "
                             "stale wrong-shape .mat (moved aside, reported)", "P006", outcome=FAILED,
                             reason="cine_sax_kus_Uniform4.mat", note="moved aside")
    with open(path, "r+b") as stream:
        stream.truncate(int(path.stat().st_size * 0.5))
    (root / "Cine" / "TestSet" / "empty").mkdir()
    upper = tree.paths("P007")[0]
    upper.parent.mkdir(parents=True)
    matio.write_kspace_v73(upper.with_suffix(".MAT"), "kus", simulated_kspace(SHAPE, 7))
    tree.expect("upper_case_extension", "an input named .MAT instead of .mat (a row, not a silent skip)",
                upper.with_suffix(".MAT"), FAILED, reason="is not the challenge's '.mat'")
    out = "Cine/TestSet/Task1/{}/cine_sax_kus_Uniform4.mat"
    return {out.format("P002"): "folder", str(PurePosixPath(out.format("P003")).parent): "file",
            out.format("P004"): "link:guard/input/" + str(tree.paths("P004")[0].relative_to(root)),
            str(PurePosixPath(out.format("P005")).parent): "link:guard/input/"
            + str(tree.paths("P005")[0].parent.relative_to(root)),
            out.format("P006"): "wrong_shape",
            str(PurePosixPath(out.format("P008")).parent): "link:guard/input/Cine/TestSet/empty"}


def _write_2023_nested(top: Path, cases: list[Case]) -> None:
    """A 2023 tree run as ``--input X/MultiCoil/Cine --output X``: the output path of every input is the
    input itself."""
    root = top / "MultiCoil" / "Cine"
    path = root / "TestSet" / "AccFactor04" / "P001" / "cine_sax.mat"
    path.parent.mkdir(parents=True)
    mask = sampling_mask("Uniform", SHAPE, 4, 23)
    kspace = simulated_kspace(SHAPE, 23) * mask[None, None, None]
    matio.write_kspace_v73(path, "kspace_sub04", kspace.astype(np.complex64))
    matio.write_mask_v73(path.with_name("cine_sax_mask.mat"), "mask04", mask.astype(np.float64))
    job = rules.parse_job(root, path)
    cases.append(Case(name="output_is_its_own_input_2023", scenario="nested_2023",
                      description="2023 tree, output root above the input root: the output path is the input",
                      input=str(PurePosixPath(*path.relative_to(root).parts)), outcome=FAILED,
                      output=str(job.output_relative), reason="resolves to the input file"))


def _write_absurd(root: Path, cases: list[Case]) -> None:
    """A file whose header declares a 366 GiB image (a few KB on disk) beside a valid one."""
    tree = _TreeWriter(root, "absurd", cases)
    tree.volume("valid_beside_absurd", "a valid file beside an absurd one", "P001")
    path = tree.paths("P002")[0]
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:     # chunked and never written: no bytes stored
        handle.create_dataset("kus", shape=ABSURD_SHAPE, dtype=np.complex64, chunks=(1, 1, 1, 256, 256))
    tree.expect("declared_366_gib_image", f"header shape {ABSURD_SHAPE}: a 366 GiB image, tiny on disk", path,
                FAILED, reason="needs at least")


def _write_small(root: Path, scenario: str, cases: list[Case], count: int = 2, **expectations) -> None:
    tree = _TreeWriter(root, scenario, cases)
    for index in range(count):
        tree.volume(f"valid_{index + 1}", f"valid file {index + 1}", f"P{index + 1:03d}", **expectations)


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
    plant = _write_guard(out / "guard" / "input", cases)
    _write_2023_nested(out / "nested_2023", cases)
    _write_absurd(out / "absurd" / "input", cases)
    _write_small(out / "small" / "disk_full_report", "disk_full_report", [])   # no report, so no rows to check
    for name in ("broken_pipe", "rank_without_torchrun", "disk_full_outputs", "empty_weights"):
        _write_small(out / "small" / name, name, cases,
                     **({"outcome": FAILED, "reason": "No space left on device", "note": "was kept"}
                        if name.startswith("disk_full") else {}))
    shard_tree = _TreeWriter(out / "small" / "shard_summary", "shard_summary", cases)
    shard_tree.volume("other_shards_file", "file 0 of 2: shard 0's, no row in shard 1's report", "P001",
                      outcome=ABSENT)
    shard_tree.volume("this_shards_file", "file 1 of 2: shard 1's", "P002")
    empty_weights = out / "small" / "empty_weights.pt"
    empty_weights.write_bytes(b"")

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
    zerofilled = ["--method", "zerofilled", "--device", "cpu"]
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
        # issue 17: outputs that must never be written, blocked, stale; absurd inputs; closed pipes; full disks
        Scenario("guard", "folders, files and links in the way of outputs; a stale wrong-shape output",
                 "guard/input", "runs/guard", exit_code=1, arguments=zerofilled, plant=plant),
        Scenario("nested_2023", "2023 tree with --input X/MultiCoil/Cine --output X", "nested_2023/MultiCoil/Cine",
                 "nested_2023", exit_code=1, arguments=zerofilled),
        Scenario("absurd", "a header declaring a 366 GiB image beside a valid file", "absurd/input",
                 "runs/absurd", exit_code=1, arguments=zerofilled),
        Scenario("broken_pipe", "stdout+stderr into a pipe closed after 2 lines (`2>&1 | head -2`)",
                 "small/broken_pipe", "runs/broken_pipe", exit_code=0, arguments=zerofilled, pipe_lines=2),
        Scenario("disk_full_outputs", "rerun without --resume on a full disk: earlier valid outputs kept",
                 "small/disk_full_outputs", "runs/disk_full_outputs", exit_code=1, arguments=zerofilled,
                 tmpfs_bytes=1 << 20, prerun=True, disk_free_bytes=16 << 10),
        Scenario("disk_full_report", "a disk too full even for the report: summary and exit line on stdout",
                 "small/disk_full_report", "runs/disk_full_report", exit_code=1, arguments=zerofilled,
                 report=False, message="the run report could not be written", tmpfs_bytes=1 << 20, prerun=True,
                 disk_free_bytes=0),
        Scenario("device_unknown", "--device foo", "small/broken_pipe", "runs/device_unknown", exit_code=2,
                 arguments=["--method", "zerofilled", "--device", "foo"], report=False,
                 message="--device 'foo' is not a device"),
        Scenario("device_cuda_absent", "--device cuda on a machine without CUDA", "small/broken_pipe",
                 "runs/device_cuda_absent", exit_code=2, arguments=["--method", "zerofilled", "--device", "cuda"],
                 report=False, message="no CUDA device is available", needs_no_cuda=True),
        Scenario("world_size_malformed", "WORLD_SIZE=two in the environment", "small/broken_pipe",
                 "runs/world_size_malformed", exit_code=2, arguments=zerofilled, report=False,
                 env={"WORLD_SIZE": "two"}, message="WORLD_SIZE='two' is not an integer"),
        Scenario("rank_without_torchrun", "RANK=1 WORLD_SIZE=2 without torchrun: ignored, every file done",
                 "small/rank_without_torchrun", "runs/rank_without_torchrun", exit_code=0, arguments=zerofilled,
                 env={"RANK": "1", "WORLD_SIZE": "2"}, run_note="not launched by torchrun"),
        Scenario("shard_summary", "--shard 1/2: the summary says which shard and what the others hold",
                 "small/shard_summary", "runs/shard_summary", exit_code=0, arguments=[*zerofilled, "--shard", "1/2"],
                 message="shard 1/2 (this shard's files only; the other 1 shard(s) hold 1 files)"),
        Scenario("empty_weights", "--method genre with a 0-byte weights file: the note names the file",
                 "small/empty_weights", "runs/empty_weights", exit_code=0,
                 arguments=["--method", "genre", "--device", "cpu", "--weights", "{out}/small/empty_weights.pt"],
                 run_note="empty_weights.pt", primary_method="cgsense"),
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
    if scenario.needs_no_cuda and _cuda_available():
        result.skipped = "CUDA is available here"
        return result
    input_root, output_root = out / scenario.input_root, out / scenario.output_root
    if scenario.copy_output_of:
        source = next(s for s in load_expected(out)[0] if s.name == scenario.copy_output_of)
        remove_tree(output_root)
        shutil.copytree(out / source.output_root, output_root, symlinks=True)
        _damage_outputs(output_root, scenario)
    mounted = False
    if scenario.tmpfs_bytes:
        if output_root.is_mount():
            _unmount(output_root)
        remove_tree(output_root)
        output_root.mkdir(parents=True)
        why = _mount_tmpfs(output_root, scenario.tmpfs_bytes)
        if why:
            result.skipped = f"cannot mount a tmpfs for a full disk: {why}"
            return result
        mounted = True
    try:
        _plant(out, output_root, scenario.plant)
        result.details["planted"] = _planted_state(output_root, scenario.plant)
        with _ReadOnly(input_root), _ReadOnly(output_root, scenario.read_only_output):
            for relative in scenario.unreadable:     # modes come back with _ReadOnly's exit
                (input_root / relative).chmod(0)
            result.input_before = snapshot(input_root)
            if scenario.in_process:
                _run_in_process(scenario, cases, input_root, output_root, result)
            else:
                command = [*(prefix or []), sys.executable, str(REPO / "predict.py"), "--input", str(input_root),
                           "--output", str(output_root),
                           *(a.replace("{out}", str(out)) for a in scenario.arguments)]
                if scenario.prerun:
                    first = _run_child(command, scenario, pipe_lines=None)
                    if first["exit_code"] != 0:
                        result.skipped = f"the earlier (pre-)run failed: {first['output'][-500:]}"
                        return result
                    result.details["outputs_before"] = _file_bytes(output_root, input_root)
                if scenario.disk_free_bytes is not None:
                    result.details["free_bytes"] = _fill_filesystem(output_root, scenario.disk_free_bytes)
                child = _run_child(command, scenario, scenario.pipe_lines)
                result.exit_code, result.output_text = child["exit_code"], child["output"]
                result.details.update(peak_rss_mib=child["peak_rss_mib"], seconds=child["seconds"],
                                      hung=child["hung"])
            result.input_after = snapshot(input_root)
        _collect_outputs(output_root, input_root, result)
        result.details["planted_after"] = _planted_state(output_root, scenario.plant)
        if scenario.prerun:
            result.details["outputs_after"] = _file_bytes(output_root, input_root)
    finally:
        if mounted:
            _unmount(output_root)
    return result


def _collect_outputs(output_root: Path, input_root: Path, result: RunResult) -> None:
    """Every file under the output root (the input root left out when it lies inside) and the report."""
    if not output_root.is_dir():
        return
    inside = os.path.abspath(input_root) + os.sep          # links not followed: OUT may be relative
    result.output_files = {str(PurePosixPath(*p.relative_to(output_root).parts)) for p in _walk(output_root)
                           if not p.is_dir() and not os.path.abspath(p).startswith(inside)
                           and not p.name.startswith(BALLAST_NAME)}
    reports = sorted(output_root.glob("run_report*.json"))
    if len(reports) == 1:
        result.report = json.loads(reports[0].read_text())


def _run_child(command: list[str], scenario: Scenario, pipe_lines: int | None) -> dict:
    """predict.py in a child process: exit status, output, peak RSS, seconds; ``pipe_lines``: read that many
    lines of stdout+stderr, then close the pipe as `| head -N` does. A child that outlives the timeout is killed
    and reported as hung. The peak RSS comes from /usr/bin/time (a small parent: a child forked from this
    process would inherit this process's high-water mark in wait4's ru_maxrss); None where it is missing."""
    env = {**os.environ, **scenario.env}
    started = time.monotonic()
    timer = shutil.which("time", path="/usr/bin:/bin")
    rss_file = tempfile.NamedTemporaryFile(prefix="fault-tree-rss-", delete=False)
    rss_file.close()
    if timer:
        command = [timer, "-q", "-f", "%M", "-o", rss_file.name, *command]
    with tempfile.TemporaryFile("w+") as sink:
        if pipe_lines is None:
            process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
                                       start_new_session=True)
        else:
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=env, start_new_session=True)
            lines = [process.stdout.readline() for _ in range(pipe_lines)]
            process.stdout.close()
            sink.write("".join(lines))
        timeout = PIPE_TIMEOUT_S if pipe_lines is not None else PREDICT_TIMEOUT_S
        exit_code, rss_kib, hung = None, 0, False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                exit_code, rss_kib = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                process.returncode = exit_code
                break
            if time.monotonic() - started > timeout:
                hung = True
                os.killpg(process.pid, 9)         # its own session: the timer and predict.py both
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode, rss_kib = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                break
            time.sleep(0.1)
        sink.seek(0)
        output = sink.read()
    if hung:
        output += f"\n(killed after {timeout} s: the run hung)"
    try:
        peak = int(Path(rss_file.name).read_text().split()[-1]) / 1024 if timer else None
    except (OSError, ValueError, IndexError):
        peak = None
    finally:
        os.unlink(rss_file.name)
    return {"exit_code": None if hung else exit_code, "output": output, "peak_rss_mib": peak,
            "seconds": time.monotonic() - started, "hung": hung}


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


BALLAST_NAME = ".fault-tree-ballast"


def _mount_tmpfs(folder: Path, size: int) -> str | None:
    """Mount a tmpfs of ``size`` bytes on folder; None on success, else why not."""
    if shutil.which("mount") is None:
        return "no mount command"
    try:
        finished = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                  capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    return None if finished.returncode == 0 else (finished.stderr.strip() or f"exit {finished.returncode}")


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def _fill_filesystem(folder: Path, leave: int) -> int:
    """Fill folder's filesystem with a ballast file, then give back ``leave`` bytes; returns the bytes free."""
    ballast = folder / BALLAST_NAME
    block = b"\0" * 4096
    with open(ballast, "ab", buffering=0) as stream:    # unbuffered: nothing left to fail at close
        try:
            while stream.write(block):
                pass
        except OSError:
            pass
    size = ballast.stat().st_size
    with open(ballast, "r+b") as stream:
        stream.truncate(max(0, size - leave))
    info = os.statvfs(folder)
    return info.f_bavail * info.f_frsize


def _file_bytes(output_root: Path, input_root: Path) -> dict[str, str]:
    """sha256 of every regular file under output_root (the ballast and the report left out)."""
    import hashlib
    found = {}
    for path in _walk(output_root):
        if path.is_file() and not path.is_symlink() and not path.name.startswith(BALLAST_NAME) \
                and not path.name.startswith("run_report") and input_root.resolve() not in path.resolve().parents:
            found[str(PurePosixPath(*path.relative_to(output_root).parts))] = \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _plant(out: Path, output_root: Path, plant: dict[str, str]) -> None:
    """What sits in the output root before the run (Scenario.plant)."""
    if plant:
        remove_tree(output_root)
    for relative, kind in plant.items():
        path = output_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "folder":
            path.mkdir()
        elif kind == "file":
            path.write_text("a regular file where a folder of outputs goes\n")
        elif kind == "wrong_shape":
            scipy.io.savemat(path, {"img4ranking": np.ones((5, 5), np.float32)})
        elif kind.startswith("link:"):
            path.symlink_to(Path(out).resolve() / kind[len("link:"):])   # absolute: OUT may be relative
        else:
            raise ValueError(f"unknown plant {kind!r}")


def _planted_state(output_root: Path, plant: dict[str, str]) -> dict[str, str]:
    state = {}
    for relative in plant:
        path = output_root / relative
        if path.is_symlink():
            state[relative] = f"link to {os.readlink(path)}"
        elif path.is_dir():
            state[relative] = f"folder of {sorted(os.listdir(path))}"
        elif path.is_file():
            state[relative] = f"file of {path.stat().st_size} bytes"
        else:
            state[relative] = "nothing"
    return state


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
    # paths whose occupant is not the run's to judge: planted things (checked apart) and outputs that resolve
    # into the input root (the input itself)
    input_root = os.path.realpath(Path(out) / scenario.input_root)
    owned |= {case.output for case in mine if case.output and (
        any(case.output == p or case.output.startswith(p + "/") for p in scenario.plant)
        or os.path.realpath(output_root / case.output).startswith(input_root + os.sep))}
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
    kept = {row["output_relative"] for row in (report or {}).get("files", [])
            if any(KEPT_NOTE in note for note in row["notes"])}
    kept |= set(run.details.get("outputs_before", {}))       # a full disk: the earlier run's outputs stay
    planted = {relative for relative, kind in scenario.plant.items() if kind != "wrong_shape"}
    leftovers = sorted(f for f in run.output_files
                       if f not in valid_outputs | kept | planted and not re.fullmatch(r"run_report[^/]*\.json", f)
                       and not (f.startswith(output_safety.MOVED_ASIDE + "/") and f.endswith(
                           output_safety.MOVED_SUFFIX))
                       and not (not scenario.report and f == "run_report.json.stale"))
    if leftovers:
        problems.append(f"unexpected files in the output root: {leftovers[:5]}")
    problems += _check_measurements(scenario, run)
    problems += _check_surroundings(scenario, run)
    expected = f"exit {scenario.exit_code}" + ("" if scenario.report else ", no report")
    actual = f"exit {run.exit_code}" + ("" if report is not None else ", no report")
    return Check(scenario.name, "*", expected, actual, "MISMATCH" if problems else "ok",
                 "; ".join(problems) or scenario.description)


def _check_surroundings(scenario: Scenario, run: RunResult) -> list[str]:
    """Issue 17: no hang, a summary and an exit line on stdout, planted things left alone (a stale
    wrong-shape output moved aside), the earlier run's outputs byte for byte where the disk was full."""
    problems = []
    details = run.details
    if details.get("hung"):
        problems.append("the run hung (killed at the timeout)")
    if scenario.pipe_lines is None and not scenario.in_process and run.exit_code in (0, 1) \
            and f"exit code {run.exit_code}" not in run.output_text:
        problems.append("no 'exit code' line on stdout")
    after = details.get("planted_after", {})
    for relative, kind in scenario.plant.items():
        before_state, after_state = details.get("planted", {}).get(relative), after.get(relative)
        if kind == "wrong_shape":
            moved = [f for f in run.output_files if f.startswith(f"{output_safety.MOVED_ASIDE}/{relative}")]
            if after_state != "nothing" or not moved:
                problems.append(f"the stale {relative} was not moved aside ({after_state}; moved: {moved})")
        elif before_state != after_state:
            problems.append(f"{relative} changed: {before_state} -> {after_state}")
    before, now = details.get("outputs_before"), details.get("outputs_after")
    if before is not None:
        changed = sorted(name for name, digest in before.items() if now.get(name) != digest)
        if changed:
            problems.append(f"earlier outputs changed or deleted: {changed[:3]}")
    return problems


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
    kept = any(KEPT_NOTE in note for note in row["notes"])
    if case.output is not None and (case.outcome in VALID_OUTCOMES or case.output not in owned) and not kept:
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
    started_all = time.monotonic()
    lines = ["scenario                    seconds  peak RSS (MiB)  rows by outcome"]
    for scenario in scenarios:
        started = time.monotonic()
        run = run_scenario(out, scenario, cases, prefix)
        checks += check_run(out, scenario, cases, run)
        seconds = time.monotonic() - started
        print(f"ran {scenario.name} in {seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes: dict[str, int] = {}
        for row in (run.report or {}).get("files", []):
            outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
        peak = run.details.get("peak_rss_mib")
        lines.append(f"{scenario.name:<26} {seconds:8.1f}  {'-' if peak is None else f'{peak:14.0f}':>14}  "
                     + (run.skipped and f"skipped: {run.skipped}"
                        or ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "no report"))
    expected_outcomes: dict[str, int] = {}
    for case in cases:
        expected_outcomes[case.outcome] = expected_outcomes.get(case.outcome, 0) + 1
    lines.append(f"{len(cases)} cases in {len(scenarios)} scenarios, expected outcomes "
                 + ", ".join(f"{k} {v}" for k, v in sorted(expected_outcomes.items()))
                 + f"; {time.monotonic() - started_all:.0f} s in all")
    print("\n".join(lines), flush=True)
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
