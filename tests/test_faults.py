"""Fault tolerance of predict.py (issue 6): the fault tree of tools.faults, run scenario by scenario.

Each scenario is run once (predict.py in a child process, or runner.run with an injected model) and every
case of the issue is its own test on that run. File-permission cases need permissions that bind: not root, or
root under setpriv without CAP_DAC_OVERRIDE; an in-process PermissionError test covers them everywhere.
"""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from challenge import matio
from challenge.report import BY_MODEL, FAILED
from challenge.runner import RunOptions, run
from tools.faults import trees
from tools.faults.__main__ import chosen, main as faults_main
from tools.faults.checks import check_run
from tools.faults.expected import ABSENT, load_expected
from tools.faults.running import permission_prefix, run_scenario
from tools.faults.trees import LARGE_SHAPE, SCENARIO_NAMES, SLAB_BYTES, build_fault_tree, remove_tree

REPO = Path(__file__).resolve().parent.parent

# The issue's list, each item -> (scenario, case) of the fault tree ('*': the scenario's run-wide checks).
ISSUE_CASES = {
    "truncated HDF5": ("main", "truncated_hdf5"),
    "a non-MAT file named .mat": ("main", "not_a_mat_file"),
    "MAT v5 where v7.3 is usual": ("main", "mat_v5"),
    "missing kus key": ("main", "missing_kus_key"),
    "unexpected extra keys": ("main", "extra_keys"),
    "real instead of complex data": ("main", "real_valued"),
    "NaN or Inf in k-space": ("main", "nan_inf"),
    "all-zero k-space": ("main", "all_zero"),
    "missing mask file": ("main", "missing_mask"),
    "mask of the wrong shape": ("main", "mask_wrong_shape"),
    "1 frame, 1 slice, 1 coil": ("main", "single_frame_slice_coil"),
    "odd matrix sizes": ("main", "odd_matrix"),
    "a large matrix processed in pieces within the memory bound": ("injected", "large_matrix_in_slabs"),
    "4-D data where 5-D is usual": ("main", "four_d"),
    "empty folders": ("main", "empty_folders"),
    "an input root of empty folders only": ("empty_root", "*"),
    "a symlink loop": ("main", "symlink_loop"),
    "a symlink to itself named as an input": ("main", "symlink_self_loop"),
    "an unreadable file": ("permissions", "unreadable_file"),
    "an unreadable folder": ("permissions", "unreadable_folder"),
    "a read-only input root": ("main", "*"),
    "an output root below a file": ("output_is_under_a_file", "*"),
    "an output root without write permission": ("output_read_only", "*"),
    "partial output of an earlier run, --resume": ("resume", "valid_uniform"),
    "corrupt output of an earlier run, --resume": ("resume", "mat_v5"),
    "wrong-shape output of an earlier run, --resume": ("resume", "extra_keys"),
    "temporary files of an earlier run, --resume": ("resume", "*"),
    "the model raising in the middle of a volume": ("injected", "model_raises_mid_volume"),
    "the model raising in the second slab": ("injected", "model_raises_in_second_slab"),
    "the model returning NaN": ("injected", "model_returns_nan"),
    "a simulated CUDA out-of-memory": ("injected", "cuda_out_of_memory"),
    "weights whose sha256 does not match": ("bad_weights", "*"),
    "fallback used when the weights are refused": ("bad_weights", "weights_sha256_mismatch"),
    # issue 17: what surrounds the run
    "a folder where an output file goes": ("guard", "folder_at_output_file"),
    "a regular file where an output patient folder goes": ("guard", "file_at_output_patient_folder"),
    "a link at an output path to its own input": ("guard", "output_link_to_its_input"),
    "an output patient folder linked into the input": ("guard", "output_folder_linked_into_input"),
    "an output patient folder linked inside the input root": ("guard", "output_folder_linked_into_input_root"),
    "a stale wrong-shape output of a failed input, moved aside": ("guard", "stale_wrong_shape_of_failed_input"),
    "an input named .MAT": ("guard", "upper_case_extension"),
    "a 2023 output root above the input root": ("nested_2023", "output_is_its_own_input_2023"),
    "a declared 366 GiB image beside a valid file": ("absurd", "declared_366_gib_image"),
    "the valid file beside the absurd one": ("absurd", "valid_beside_absurd"),
    "stdout and stderr closed by their reader mid-run": ("broken_pipe", "*"),
    "a full disk on a rerun without --resume keeps earlier outputs": ("disk_full_outputs", "valid_1"),
    "a disk too full for the report": ("disk_full_report", "*"),
    "--device foo": ("device_unknown", "*"),
    "--device cuda without a GPU": ("device_cuda_absent", "*"),
    "a malformed WORLD_SIZE": ("world_size_malformed", "*"),
    "RANK/WORLD_SIZE without torchrun": ("rank_without_torchrun", "*"),
    "a sharded run's summary": ("shard_summary", "*"),
    "a 0-byte weights file named in the note": ("empty_weights", "*"),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here and in the predict.py children: faster on a shared, busy CPU."""
    threads, variable = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if variable is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = variable


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    build_fault_tree(out)
    scenarios, cases = load_expected(out)
    yield out, {s.name: s for s in scenarios}, cases
    remove_tree(out)


@pytest.fixture(scope="module")
def prefix():
    return permission_prefix()


@pytest.fixture(scope="module")
def runs(tree, prefix):
    """scenario name -> (RunResult, {case: Check}); each scenario runs once, on first use, in list order
    (resume starts from main's output)."""
    out, scenarios, cases = tree
    done = {}

    def get(name):
        if name == "resume":
            get("main")
        if name not in done:
            result = run_scenario(out, scenarios[name], cases, prefix)
            checks = check_run(out, scenarios[name], cases, result)
            done[name] = result, {check.case: check for check in checks}
        return done[name]
    return get


@pytest.mark.parametrize("item", list(ISSUE_CASES), ids=list(ISSUE_CASES))
def test_issue_case(item, runs):
    scenario, case = ISSUE_CASES[item]
    result, checks = runs(scenario)
    check = checks[case]
    if check.status == "skip":
        pytest.skip(check.detail)
    assert check.status == "ok", f"{scenario}/{case}: expected {check.expected}, got {check.actual}: {check.detail}"
    assert checks["*"].status == "ok", checks["*"].detail


@pytest.mark.parametrize("scenario", ["main", "resume", "injected", "bad_weights", "permissions", "empty_root",
                                      "output_is_under_a_file", "output_read_only", "guard", "nested_2023", "absurd",
                                      "broken_pipe", "disk_full_outputs", "disk_full_report", "device_unknown",
                                      "device_cuda_absent", "world_size_malformed", "rank_without_torchrun",
                                      "shard_summary", "empty_weights"])
def test_every_case_of_the_scenario(scenario, runs, tree):
    """Cases beyond the issue's list (valid neighbours, the resumed rows) are checked as well."""
    _, scenarios, cases = tree
    result, checks = runs(scenario)
    if result.skipped:
        pytest.skip(result.skipped)
    expected_cases = {"*"} | {case.name for case in cases if case.scenario == scenario}
    assert set(checks) == expected_cases
    bad = [f"{c.case}: {c.actual} ({c.detail})" for c in checks.values() if c.status != "ok"]
    assert not bad, bad


def test_issue_list_is_covered_by_the_tree(tree):
    out, scenarios, cases = tree
    names = {(case.scenario, case.name) for case in cases}
    for scenario, case in ISSUE_CASES.values():
        assert scenario in scenarios and (case == "*" or (scenario, case) in names), (scenario, case)
    for case in cases:
        assert case.outcome in ("model", "fallback", "failed", "resumed", ABSENT)
        root = out / scenarios[case.scenario].input_root
        assert (root / case.input).is_symlink() or (root / case.input).exists()
        if case.outcome in (FAILED, "fallback"):
            assert case.reason, f"{case.name}: a failure or fallback needs its expected reason"
    saved = json.loads((out / "expected.json").read_text())
    assert {c["name"] for c in saved["cases"]} == {c.name for c in cases}


def test_main_run_exit_status_and_report_agree(runs):
    result, _ = runs("main")
    report = result.report
    assert result.exit_code == report["exit_code"] == 1
    outcomes = [row["outcome"] for row in report["files"]]
    assert report["files_valid"] == sum(o in ("model", "fallback", "resumed") for o in outcomes)
    assert 0 < report["success_rate"] < 1
    assert "exit code 1" in result.output_text
    # nothing but the validated outputs and the report
    assert all(f.endswith(".mat") or f == "run_report.json" for f in result.output_files)
    assert result.input_before == result.input_after


def test_resume_redoes_damaged_outputs_only(runs, tree):
    out, scenarios, _ = tree
    result, _ = runs("resume")
    by_outcome = {}
    for row in result.report["files"]:
        by_outcome.setdefault(row["outcome"], set()).add(row["input_relative"])
    redone = {str(Path(relative)) for relative in scenarios["resume"].damage}
    assert len(by_outcome["model"]) == len(redone) == 4
    assert len(by_outcome["resumed"]) >= 5
    assert not any(name.endswith(".tmp") for name in result.output_files)


def test_injected_model_measurements(runs, tree):
    out, _, cases = tree
    result, _ = runs("injected")
    details = result.details
    assert details["out_of_memory_batch_sizes"] == [8] and details["batch_size_after"] == 4
    large = next(c.input for c in cases if c.name == "large_matrix_in_slabs")
    assert details["calls"][large] == LARGE_SHAPE[1]            # one call per one-slice slab
    assert 0 < details["largest_call_bytes"] <= SLAB_BYTES
    assert details["peak_traced_bytes"] < int(np.prod(LARGE_SHAPE)) * 8 // 2
    mid = next(c.input for c in cases if c.name == "model_raises_mid_volume")
    row = next(r for r in result.report["files"] if r["input_relative"] == mid)
    assert row["method"] == "cgsense" and "after slice 1 of 3" in row["reason"]


def test_permission_error_in_process(tmp_path, monkeypatch):
    """Where permissions cannot bind (root without setpriv), a PermissionError from the reader stands in."""
    out = tmp_path / "faults"
    root = out / "permissions" / "input"
    cases = []
    trees._write_permissions(root, cases)
    unreadable = next(c for c in cases if c.name == "unreadable_file")
    real_info = matio.kspace_info

    def kspace_info(path, *args, **kwargs):
        if Path(path).name == Path(unreadable.input).name and "P002" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_info(path, *args, **kwargs)

    monkeypatch.setattr(matio, "kspace_info", kspace_info)
    report = run(RunOptions(input_root=root, output_root=tmp_path / "output", method="zerofilled", device="cpu"))
    rows = {r.input_relative: r for r in report.files}
    assert rows[unreadable.input].outcome == FAILED
    assert "Permission denied" in rows[unreadable.input].reason and "P002" in rows[unreadable.input].reason
    others = [r for name, r in rows.items() if name != unreadable.input]
    assert others and all(r.outcome == BY_MODEL for r in others) and report.exit_code == 1


def test_checker_catches_mismatches(runs, tree):
    """The checks can fail: a wrong expectation, a missing output, a changed input tree are all reported."""
    out, scenarios, cases = tree
    result, _ = runs("main")
    wrong = [copy.copy(case) for case in cases]
    flipped = next(c for c in wrong if c.scenario == "main" and c.name == "valid_uniform")
    flipped.outcome = FAILED
    checks = {c.case: c for c in check_run(out, scenarios["main"], wrong, result)}
    assert checks["valid_uniform"].status == "MISMATCH"
    tampered = copy.copy(result)
    tampered.input_after = {**result.input_after, "new_file": (0, 0, 0, 0)}
    tampered.exit_code = 0
    star = {c.case: c for c in check_run(out, scenarios["main"], cases, tampered)}["*"]
    assert star.status == "MISMATCH" and "input root changed" in star.detail and "exit status 0" in star.detail
    output = out / scenarios["main"].output_root / flipped.output
    saved = output.read_bytes()
    scipy.io.savemat(output, {"img4ranking": np.ones((3, 3), np.float32)})
    try:
        checks = {c.case: c for c in check_run(out, scenarios["main"], cases, result)}
        assert checks["valid_uniform"].status == "MISMATCH" and "shape" in checks["valid_uniform"].detail
    finally:
        output.write_bytes(saved)


@pytest.mark.slow
def test_make_faults_command(tmp_path):
    """`python -m tools.faults --run OUT` (the Makefile's `faults`) builds, runs, checks, exits 0. Every scenario
    is run by the tests above; here two small ones go through the command (--scenarios) and an unknown name fails."""
    command = [sys.executable, "-m", "tools.faults", "--run", str(tmp_path / "faults")]
    finished = subprocess.run(command + ["--scenarios", "nested_2023", "bad_weights"],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-2000:]
    assert "0 mismatched" in finished.stdout and "2 cases in 2 scenarios" in finished.stdout
    assert "weights_sha256_mismatch" in finished.stdout and "truncated_hdf5" not in finished.stdout
    wrong = subprocess.run(command + ["--scenarios", "nope"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert wrong.returncode == 2 and "no scenario nope" in wrong.stderr
    remove_tree(tmp_path / "faults")


def test_scenario_names_are_the_built_trees(tree):
    """The command checks --scenarios against SCENARIO_NAMES before it builds anything: they must be the tree's."""
    _, scenarios, _ = tree
    assert list(scenarios) == list(SCENARIO_NAMES)


@pytest.mark.parametrize("arguments, message", [
    (["--scenarios", "main"], "--scenarios chooses what --run runs"),
    (["--run", "--scenarios", "main", "nope"], "no scenario nope"),
])
def test_faults_usage_errors_come_before_the_tree_is_built(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exited:
        faults_main([str(tmp_path / "faults"), *arguments])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "faults").exists()


def test_chosen_scenarios_bring_the_run_whose_output_they_start_from(tree):
    _, scenarios, _ = tree
    listed = list(scenarios.values())
    assert [s.name for s in chosen(listed, ["resume"])] == ["main", "resume"]
    assert [s.name for s in chosen(listed, ["guard", "main"])] == ["main", "guard"]
    assert chosen(listed, None) == listed
    with pytest.raises(ValueError, match="no scenario nope"):
        chosen(listed, ["nope"])


def test_checker_catches_issue_17_failures(runs, tree):
    """The new checks can fail: a hang, a changed planted folder, a stale file left in place, an earlier output
    changed on a full disk, a missing exit line."""
    out, scenarios, cases = tree
    guard, _ = runs("guard")
    tampered = copy.deepcopy(guard)
    tampered.details["hung"] = True
    relative = next(r for r, kind in scenarios["guard"].plant.items() if kind == "folder")
    tampered.details["planted_after"][relative] = "nothing"
    stale = next(r for r, kind in scenarios["guard"].plant.items() if kind == "wrong_shape")
    tampered.details["planted_after"][stale] = "file of 100 bytes"
    tampered.output_text = tampered.output_text.replace("exit code 1", "")
    star = {c.case: c for c in check_run(out, scenarios["guard"], cases, tampered)}["*"]
    assert star.status == "MISMATCH"
    for words in ("hung", f"{relative} changed", "not moved aside", "no 'exit code' line"):
        assert words in star.detail, (words, star.detail)
    full, _ = runs("disk_full_outputs")
    if full.skipped:
        pytest.skip(full.skipped)
    tampered = copy.deepcopy(full)
    name = next(iter(tampered.details["outputs_after"]))
    tampered.details["outputs_after"][name] = "0" * 64
    star = {c.case: c for c in check_run(out, scenarios["disk_full_outputs"], cases, tampered)}["*"]
    assert star.status == "MISMATCH" and "earlier outputs changed or deleted" in star.detail


def test_guard_run_leaves_inputs_and_planted_things_alone(runs, tree):
    out, scenarios, _ = tree
    result, _ = runs("guard")
    assert result.input_before == result.input_after
    assert result.details["planted"] == {**result.details["planted_after"], **{
        r: result.details["planted"][r] for r, kind in scenarios["guard"].plant.items() if kind == "wrong_shape"}}
    moved = [f for f in result.output_files if f.startswith("invalid_outputs_moved_aside/")]
    assert len(moved) == 1 and moved[0].endswith(".mat.invalid")
