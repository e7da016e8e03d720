"""predict.py: exit codes, options, and end-to-end runs on the sample trees of every challenge year, re-checked
independently against the ground-truth shapes with scipy.io.loadmat."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import predict
from challenge import memory
from model.reconstruction import DEFAULT_ENSEMBLE
from tests.test_runner import SHAPE, expected_full_shape, files_under, snapshot, write_case

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def small_tree(tmp_path):
    root = tmp_path / "input"
    return root, [write_case(root, patient="P001", seed=1), write_case(root, patient="P002", seed=2)]


def test_success_exits_zero_and_prints_the_report(small_tree, tmp_path, capsys):
    root, cases = small_tree
    out = tmp_path / "out"
    code = predict.main(["--input", str(root), "--output", str(out), "--method", "zerofilled", "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "success rate w = 2/2" in printed and "exit code 0" in printed
    for case in cases:
        image = scipy.io.loadmat(out / case["output"])["img4ranking"]
        assert image.dtype == np.float32 and image.shape == expected_full_shape(SHAPE)
    assert json.loads((out / "run_report.json").read_text())["primary_method"] == "zerofilled"


def test_failure_exits_one(small_tree, tmp_path):
    root, cases = small_tree
    cases[0]["input"].write_bytes(b"garbage")
    code = predict.main(["--input", str(root), "--output", str(tmp_path / "out"), "--method", "zerofilled"])
    assert code == 1


def test_unwritable_output_exits_two(small_tree, tmp_path, capsys):
    root, _ = small_tree
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = predict.main(["--input", str(root), "--output", str(blocker / "out"), "--method", "zerofilled"])
    assert code == 2
    assert "not writable" in capsys.readouterr().out


def test_missing_input_root_exits_two(tmp_path):
    assert predict.main(["--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "out")]) == 2


def test_missing_weights_fall_back_to_cgsense(small_tree, tmp_path, capsys):
    root, _ = small_tree
    out = tmp_path / "out"
    code = predict.main(["--input", str(root), "--output", str(out), "--weights", str(tmp_path / "none.pt"),
                         "--device", "cpu"])
    assert code == 0
    saved = json.loads((out / "run_report.json").read_text())
    assert saved["requested_method"] == "genre" and saved["primary_method"] == "cgsense"
    assert "none.pt" in capsys.readouterr().out


@pytest.mark.parametrize("shard", ["2/2", "a/b", "1"])
def test_bad_shard_is_a_usage_error(shard):
    with pytest.raises(SystemExit) as exit_info:
        predict.parse_args(["--shard", shard])
    assert exit_info.value.code == 2


def test_options_are_parsed():
    args = predict.parse_args(["--shard", "1/4", "--resume", "--crop", "--amp", "--batch-size", "3"])
    assert args.shard == (1, 4) and args.resume and args.crop and args.amp and args.batch_size == 3
    defaults = predict.parse_args([])
    assert defaults.input == Path("/input") and defaults.output == Path("/output")
    assert defaults.method == "genre" and defaults.shard is None and defaults.device == "auto"
    assert defaults.ensemble == DEFAULT_ENSEMBLE and predict.parse_args(["--ensemble", "4"]).ensemble == 4
    with pytest.raises(SystemExit):
        predict.parse_args(["--ensemble", "3"])


# --------------------------------------------------------------------------------------------------------
# end to end on the sample trees, as the container runs it

@pytest.fixture(scope="module")
def sample_trees(tmp_path_factory):
    from tools.sample_data import build_sample_trees

    root = tmp_path_factory.mktemp("samples")
    build_sample_trees(root, years=(2023, 2024, 2025), seed=0)
    return root


def recheck_against_ground_truth(out: Path, gt: Path) -> None:
    """Every GT file has an output at the same relative path with key, float32, GT shape, finite values;
    the output tree holds no other .mat file."""
    gt_files = {f for f in files_under(gt) if f.endswith(".mat")}
    assert gt_files
    assert {f for f in files_under(out) if f.endswith(".mat")} == gt_files
    for relative in gt_files:
        reference = scipy.io.loadmat(gt / relative)["img4ranking"]
        image = scipy.io.loadmat(out / relative)["img4ranking"]
        assert image.dtype == np.float32, relative
        assert image.shape == reference.shape, relative
        assert np.isfinite(image).all() and image.any(), relative


@pytest.mark.slow
@pytest.mark.parametrize("year", [2023, 2024, 2025])
@pytest.mark.parametrize("crop", [False, True], ids=["full", "crop"])
def test_end_to_end_on_sample_tree(sample_trees, tmp_path, year, crop):
    tree = sample_trees / str(year)
    before = snapshot(tree / "input")
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "predict.py"), "--input", str(tree / "input"), "--output", str(out),
               "--method", "zerofilled", "--device", "cpu", *(["--crop"] if crop else [])]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "exit code 0" in finished.stdout
    recheck_against_ground_truth(out, tree / ("gt_crop" if crop else "gt_full"))
    assert snapshot(tree / "input") == before
    assert not [f for f in files_under(out) if not f.endswith(".mat") and f != "run_report.json"]
    saved = json.loads((out / "run_report.json").read_text())
    assert saved["success_rate"] == 1.0 and saved["files_total"] == len(
        [f for f in files_under(tree / ("gt_crop" if crop else "gt_full")) if f.endswith(".mat")])


def test_max_memory_gb_processes_a_volume_in_pieces_with_the_same_result(small_tree, tmp_path, caplog,
                                                                         monkeypatch):
    root, cases = small_tree
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    caplog.set_level(logging.INFO)
    assert predict.main(["--input", str(root), "--output", str(whole), "--method", "zerofilled"]) == 0
    assert "files to reconstruct" in caplog.text and "slabs of slices" not in caplog.text
    # the process's resident memory pinned, the bound set to leave room for one slice per slab
    in_use = 2 ** 30
    monkeypatch.setattr(memory, "resident_bytes", lambda: in_use)
    nt, nz, nc, ny, nx = SHAPE
    slice_bytes, image_bytes = nt * nc * ny * nx * 8, nt * nz * ny * nx * 4
    # the fallbacks (cgsense) may run on the same slab: the largest per-slice need counts
    bound = (in_use + memory.IMAGE_COPIES * image_bytes + max(memory.SLICE_COPIES.values()) * slice_bytes
             + 1.5 * memory.SLAB_COPIES * slice_bytes)
    assert predict.main(["--input", str(root), "--output", str(pieces), "--method", "zerofilled",
                         "--max-memory-gb", str(bound / 2 ** 30)]) == 0
    assert "reading 2 slabs of slices" in caplog.text
    for case in cases:
        np.testing.assert_array_equal(scipy.io.loadmat(whole / case["output"])["img4ranking"],
                                      scipy.io.loadmat(pieces / case["output"])["img4ranking"])


def test_max_memory_gb_below_one_slice_fails_each_file_with_its_reason(small_tree, tmp_path, monkeypatch, capsys):
    """The old name --max-slab-gb is the same bound; a volume whose one slice cannot fit is a failed row that
    says how much it needs, not a crash."""
    root, cases = small_tree
    monkeypatch.setattr(memory, "resident_bytes", lambda: 2 ** 30)
    assert predict.main(["--input", str(root), "--output", str(tmp_path / "out"), "--method", "zerofilled",
                         "--max-slab-gb", "1.0001"]) == 1
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert report["files_valid"] == 0 and report["files_total"] == len(cases)
    assert all("--max-memory-gb" in row["reason"] and "needs at least" in row["reason"] for row in report["files"])
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, message", [
    (["--device", "foo"], "--device 'foo' is not a device"),
    (["--device", "cuda"], "no CUDA device is available"),
    (["--device", "mps"], "only auto, cpu, cuda and cuda:N are supported"),
])
def test_unusable_device_exits_2_with_one_line(small_tree, tmp_path, capsys, arguments, message):
    root, _ = small_tree
    if "cuda" in arguments and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is available here")
    assert predict.main(["--input", str(root), "--output", str(tmp_path / "out"), "--method", "zerofilled",
                         *arguments]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("ERROR: ") and message in out[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "x"])
def test_max_memory_gb_must_be_a_positive_number(value, capsys):
    with pytest.raises(SystemExit) as stop:
        predict.parse_args(["--max-memory-gb", value])
    assert stop.value.code == 2
