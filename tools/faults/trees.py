"""The fault tree's input trees: valid volumes of the project's simulator written with tools.sample_data's
writer, then damaged; every case recorded with its expected outcome (tools.faults.expected)."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from challenge import masks, matio, rules
from challenge.report import BY_FALLBACK, BY_MODEL, FAILED, RESUMED, VALID_OUTCOMES
from simulation.acquisition import simulate_kspace
from simulation.phantom import phantom_series
from tools.faults.expected import ABSENT, EXPECTED_NAME, FaultCase, Scenario
from tools.sample_data import Case, write_case

SHAPE = (3, 2, 4, 32, 40)          # (nt, nz, nc, ny, nx): small, 16 ACS lines fit
ACS = rules.ACS_LINES[2024]
LARGE_SHAPE = (2, 24, 8, 128, 128)     # 50 MB of k-space ...
SLAB_BYTES = 2 * 8 * 128 * 128 * 8     # ... read one slice (2 MB) at a time
SCENARIO_DIRS = ("main", "injected", "bad_weights", "permissions", "empty_root", "blocker", "runs", "guard",
                 "nested_2023", "absurd", "small", "disk")
# every scenario build_fault_tree writes, in its order: the command checks --scenarios against these before building
SCENARIO_NAMES = ("main", "resume", "injected", "bad_weights", "permissions", "empty_root", "output_is_under_a_file",
                  "output_read_only", "guard", "nested_2023", "absurd", "broken_pipe", "disk_full_outputs",
                  "disk_full_report", "device_unknown", "device_cuda_absent", "world_size_malformed",
                  "rank_without_torchrun", "shard_summary", "empty_weights")
ABSURD_SHAPE = (12, 200, 2, 8192, 5000)   # (nt, nz, nc, ny, nx): the image alone is 366 GiB of float32
SNR = 40.0                                # of the simulated volumes (simulation.acquisition.simulate_kspace)


# ---------------------------------------------------------------------------------------------------------
# simulated volumes

def simulated_kspace(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Fully sampled k-space (nt, nz, nc, ny, nx) complex64 of the project's phantom (cine, one per slice) seen by
    nc simulated coils, with noise (simulation.acquisition)."""
    nt, nz, nc, ny, nx = shape
    rng = np.random.default_rng(seed)
    magnitude = np.stack([phantom_series("cine", nt, ny, nx, rng) for _ in range(nz)], axis=1)
    kspace, _ = simulate_kspace(magnitude, nc, rng, snr=SNR)
    return kspace


def sampling_mask(pattern: str, nt: int, ny: int, nx: int, rate: int, seed: int) -> np.ndarray:
    """The organisers' mask (nt, ny, nx) bool for a 2024 file (a Uniform one is stored as its first frame)."""
    return masks.make_mask(pattern, nt, ny, nx, rate, ACS, np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------------------
# building the trees

class _TreeWriter:
    """One scenario's input root: writes 2024-layout inputs and masks with tools.sample_data.write_case and
    records the expected outcome of every case. ``root`` must be named ``input`` (write_case's layout)."""

    def __init__(self, root: Path, scenario: str, cases: list[FaultCase]):
        if root.name != "input":
            raise ValueError(f"{root}: a fault tree's input root is named 'input'")
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
        nt, nz, nc, ny, nx = shape if has_time_axis else (1, *shape)
        mask = sampling_mask(pattern, nt, ny, nx, rate, self.seed)
        kspace = simulated_kspace((nt, nz, nc, ny, nx), self.seed)
        case = Case(self._relative(input_path), "cine", nt if has_time_axis else 0, nz, nc, ny, nx, pattern,
                    rate, mask_relative=self._relative(mask_path), mask_2d=pattern == "Uniform")
        write_case(self.root.parent, kspace, None, mask, case, crops=())
        if not write_mask:
            mask_path.unlink()
        kspace = kspace * mask[:, None, None]
        self.expect(name, description, input_path, outcome, kspace_shape=shape, has_time_axis=has_time_axis,
                    **expectations)
        return input_path, mask_path, kspace if has_time_axis else kspace[0]

    def _relative(self, path: Path) -> str:
        return str(PurePosixPath(*path.relative_to(self.root).parts))

    def expect(self, name: str, description: str, input_path: Path, outcome: str,
               kspace_shape: tuple[int, ...] | None = None, has_time_axis: bool = True, **expectations) -> None:
        output = shape = None
        job = rules.parse_job(self.root, input_path) if input_path.suffix == ".mat" else None
        if job is not None and outcome != ABSENT:
            output = str(job.output_relative)
            if kspace_shape is not None:
                shape = list(rules.expected_output_shape(job, kspace_shape, has_time_axis))
        self.cases.append(FaultCase(name=name, scenario=self.scenario, description=description,
                                    input=self._relative(input_path), outcome=outcome, output=output,
                                    output_shape=shape, **expectations))


def _write_main(root: Path, cases: list[FaultCase]) -> None:
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


def _write_injected(root: Path, cases: list[FaultCase]) -> None:
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


def _write_bad_weights(scenario_root: Path, cases: list[FaultCase]) -> Path:
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


def _write_permissions(root: Path, cases: list[FaultCase]) -> list[str]:
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


def _write_guard(root: Path, cases: list[FaultCase]) -> dict[str, str]:
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


def _write_2023_nested(top: Path, cases: list[FaultCase]) -> None:
    """A 2023 tree run as ``--input X/MultiCoil/Cine --output X`` (X = top/input): the output path of every input
    is the input itself."""
    relative = "MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat"
    nt, nz, nc, ny, nx = SHAPE
    mask = sampling_mask("Uniform", nt, ny, nx, 4, 23)
    write_case(top, simulated_kspace(SHAPE, 23), None, mask,
               Case(relative, "cine", nt, nz, nc, ny, nx, "Uniform", 4, kspace_key="kspace_sub04",
                    mask_relative=relative.replace("cine_sax", "cine_sax_mask"), mask_key="mask04", mask_2d=True),
               crops=())
    root = top / "input" / "MultiCoil" / "Cine"
    path = top / "input" / relative
    job = rules.parse_job(root, path)
    cases.append(FaultCase(name="output_is_its_own_input_2023", scenario="nested_2023",
                           description="2023 tree, output root above the input root: the output path is the input",
                           input=str(PurePosixPath(*path.relative_to(root).parts)), outcome=FAILED,
                           output=str(job.output_relative), reason="resolves to the input file"))


def _write_absurd(root: Path, cases: list[FaultCase]) -> None:
    """A file whose header declares a 366 GiB image (a few KB on disk) beside a valid one."""
    tree = _TreeWriter(root, "absurd", cases)
    tree.volume("valid_beside_absurd", "a valid file beside an absurd one", "P001")
    path = tree.paths("P002")[0]
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:     # chunked and never written: no bytes stored
        handle.create_dataset("kus", shape=ABSURD_SHAPE, dtype=np.complex64, chunks=(1, 1, 1, 256, 256))
    tree.expect("declared_366_gib_image", f"header shape {ABSURD_SHAPE}: a 366 GiB image, tiny on disk", path,
                FAILED, reason="needs at least")


def _write_small(root: Path, scenario: str, cases: list[FaultCase], count: int = 2, **expectations) -> None:
    tree = _TreeWriter(root, scenario, cases)
    for index in range(count):
        tree.volume(f"valid_{index + 1}", f"valid file {index + 1}", f"P{index + 1:03d}", **expectations)


def build_fault_tree(out: Path) -> dict:
    """Write every scenario's input tree under ``out`` and ``out/expected.json``; returns its contents."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SCENARIO_DIRS:
        remove_tree(out / name)
    cases: list[FaultCase] = []
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
    # no report, so no rows to check
    _write_small(out / "small" / "disk_full_report" / "input", "disk_full_report", [])
    for name in ("broken_pipe", "rank_without_torchrun", "disk_full_outputs", "empty_weights"):
        _write_small(out / "small" / name / "input", name, cases,
                     **({"outcome": FAILED, "reason": "No space left on device", "note": "was kept"}
                        if name.startswith("disk_full") else {}))
    shard_tree = _TreeWriter(out / "small" / "shard_summary" / "input", "shard_summary", cases)
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
        resumed = FaultCase(**{**asdict(case), "scenario": "resume", "name": case.name})
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
        Scenario("nested_2023", "2023 tree with --input X/MultiCoil/Cine --output X",
                 "nested_2023/input/MultiCoil/Cine", "nested_2023/input", exit_code=1, arguments=zerofilled),
        Scenario("absurd", "a header declaring a 366 GiB image beside a valid file", "absurd/input",
                 "runs/absurd", exit_code=1, arguments=zerofilled),
        Scenario("broken_pipe", "stdout+stderr into a pipe closed after 2 lines (`2>&1 | head -2`)",
                 "small/broken_pipe/input", "runs/broken_pipe", exit_code=0, arguments=zerofilled, pipe_lines=2),
        Scenario("disk_full_outputs", "rerun without --resume on a full disk: earlier valid outputs kept",
                 "small/disk_full_outputs/input", "runs/disk_full_outputs", exit_code=1, arguments=zerofilled,
                 tmpfs_bytes=1 << 20, prerun=True, disk_free_bytes=16 << 10),
        Scenario("disk_full_report", "a disk too full even for the report: summary and exit line on stdout",
                 "small/disk_full_report/input", "runs/disk_full_report", exit_code=1, arguments=zerofilled,
                 report=False, message="the run report could not be written", tmpfs_bytes=1 << 20, prerun=True,
                 disk_free_bytes=0),
        Scenario("device_unknown", "--device foo", "small/broken_pipe/input", "runs/device_unknown", exit_code=2,
                 arguments=["--method", "zerofilled", "--device", "foo"], report=False,
                 message="--device 'foo' is not a device"),
        Scenario("device_cuda_absent", "--device cuda on a machine without CUDA", "small/broken_pipe/input",
                 "runs/device_cuda_absent", exit_code=2, arguments=["--method", "zerofilled", "--device", "cuda"],
                 report=False, message="no CUDA device is available", needs_no_cuda=True),
        Scenario("world_size_malformed", "WORLD_SIZE=two in the environment", "small/broken_pipe/input",
                 "runs/world_size_malformed", exit_code=2, arguments=zerofilled, report=False,
                 env={"WORLD_SIZE": "two"}, message="WORLD_SIZE='two' is not an integer"),
        Scenario("rank_without_torchrun", "RANK=1 WORLD_SIZE=2 without torchrun: ignored, every file done",
                 "small/rank_without_torchrun/input", "runs/rank_without_torchrun", exit_code=0, arguments=zerofilled,
                 env={"RANK": "1", "WORLD_SIZE": "2"}, run_note="not launched by torchrun"),
        Scenario("shard_summary", "--shard 1/2: the summary says which shard and what the others hold",
                 "small/shard_summary/input", "runs/shard_summary", exit_code=0,
                 arguments=[*zerofilled, "--shard", "1/2"],
                 message="shard 1/2 (this shard's files only; the other 1 shard(s) hold 1 files)"),
        Scenario("empty_weights", "--method genre with a 0-byte weights file: the note names the file",
                 "small/empty_weights/input", "runs/empty_weights", exit_code=0,
                 arguments=["--method", "genre", "--device", "cpu", "--weights", "{out}/small/empty_weights.pt"],
                 run_note="empty_weights.pt", primary_method="cgsense"),
    ]
    expected = {"year": 2024, "scenarios": [asdict(s) for s in scenarios], "cases": [asdict(c) for c in cases]}
    (out / EXPECTED_NAME).write_text(json.dumps(expected, indent=1) + "\n")
    return expected


def _output_of(cases: list[FaultCase], name: str) -> str:
    return next(case.output for case in cases if case.name == name)


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
