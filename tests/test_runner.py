"""challenge.runner and challenge.report: streaming run, fallbacks, masks, resume, shards, report, input safety.

Inputs are small 2024-layout trees written with challenge.matio (plus the sample trees of tools.sample_data
in the slow end-to-end tests); reconstructors are the classical ones or injected fakes, so no weights are needed.
"""
import json
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from challenge import matio
from challenge.report import BY_FALLBACK, BY_MODEL, FAILED, RESUMED, FileResult, RunReport
from challenge.fallback import image_problem
from challenge.runner import RunOptions, RunSetupError, run
from model.reconstruction import WeightsUnavailable

SHAPE = (3, 2, 4, 32, 40)          # (nt, nz, nc, ny, nx): small, 16 ACS lines fit


# --------------------------------------------------------------------------------------------------------
# inputs

def uniform_mask(ny: int, nx: int, rate: int, acs: int = 16) -> np.ndarray:
    """(ny, nx) bool: every rate-th ky line plus the central acs lines."""
    rows = np.zeros(ny, bool)
    rows[::rate] = True
    rows[ny // 2 - acs // 2: ny // 2 + acs // 2] = True
    return np.broadcast_to(rows[:, None], (ny, nx)).copy()


def write_case(root: Path, base: str = "cine_sax", rate: int = 4, patient: str = "P001",
               shape: tuple = SHAPE, seed: int = 0, mask: bool = True, kspace: np.ndarray | None = None) -> dict:
    """One 2024 Task-1 input (+ mask) under root; returns its paths (input, mask, output relative)."""
    rng = np.random.default_rng(seed)
    nt, nz, nc, ny, nx = shape
    sampling = uniform_mask(ny, nx, rate)
    if kspace is None:
        kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        kspace *= sampling
    name = f"{base}_kus_Uniform{rate}.mat"
    input_path = root / "Cine" / "TestSet" / "UnderSample_Task1" / patient / name
    mask_path = root / "Cine" / "TestSet" / "Mask_Task1" / patient / f"{base}_mask_Uniform{rate}.mat"
    input_path.parent.mkdir(parents=True, exist_ok=True)
    matio.write_kspace_v73(input_path, "kus", kspace)
    if mask:
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        matio.write_mask_v73(mask_path, "mask", sampling.astype(np.float64))
    return {"input": input_path, "mask": mask_path, "kspace": kspace, "sampling": sampling,
            "output": Path("Cine", "TestSet", "Task1", patient, name)}


def expected_full_shape(shape: tuple) -> tuple:
    nt, nz, _, ny, nx = shape
    return (nx, ny, nz, nt)


def zero_filled_rss(kspace: np.ndarray) -> np.ndarray:
    """(nt, nz, nc, ny, nx) -> (nt, nz, ny, nx) float32, MATLAB-centred orthonormal IFFT."""
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    return np.sqrt((np.abs(image) ** 2).sum(axis=2)).astype(np.float32)


class FakeReconstructor:
    """Zero-filled RSS in numpy, with injectable failures."""

    def __init__(self, name: str, fail_on: set | None = None, output=None, oom_above: int | None = None,
                 batch_size: int = 8):
        self.name = name
        self.fail_on = fail_on or set()     # meta.name values that raise
        self.output = output                # 'nan' | 'zeros' | 'shape': invalid images
        self.oom_above = oom_above          # raise CUDA OOM while batch_size > oom_above
        self.batch_size = batch_size
        self.calls: list[tuple[str, int]] = []   # (meta.name, nz of the slab)

    def reconstruct(self, kspace, mask, meta, progress=None):
        self.calls.append((meta.name, kspace.shape[1]))
        assert mask.dtype == bool and mask.shape == (kspace.shape[0], *kspace.shape[3:])
        if self.oom_above is not None and self.batch_size > self.oom_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if meta.name in self.fail_on:
            raise RuntimeError("injected model failure")
        image = zero_filled_rss(kspace)
        if self.output == "nan":
            image[0, 0, 0, 0] = np.nan
        elif self.output == "zeros":
            image[:] = 0
        elif self.output == "shape":
            image = image[..., 1:]
        for _ in range(kspace.shape[1]):
            if progress:
                progress(1)
        return image


def factory_of(**reconstructors):
    defaults = {name: FakeReconstructor(name) for name in ("genre", "cgsense", "zerofilled")}
    defaults.update(reconstructors)
    return lambda method: defaults[method]


def options(input_root, output_root, **changes) -> RunOptions:
    return RunOptions(input_root=input_root, output_root=output_root, **changes)


def loadmat_output(path: Path) -> np.ndarray:
    contents = scipy.io.loadmat(path)
    assert "img4ranking" in contents
    return contents["img4ranking"]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def tree(tmp_path):
    """Three inputs: two cine_sax patients and one cine_lax."""
    root = tmp_path / "input"
    cases = [write_case(root, patient="P001", seed=1), write_case(root, patient="P002", seed=2),
             write_case(root, base="cine_lax", rate=8, patient="P001", seed=3)]
    return root, cases


def result_for(report: RunReport, case: dict) -> FileResult:
    relative = str(case["input"].relative_to(case["input"].parents[4]))
    return next(r for r in report.files if r.input_relative == relative)


# --------------------------------------------------------------------------------------------------------
# runs

def test_run_writes_every_output_and_matches_zero_filled(tree, tmp_path):
    root, cases = tree
    out = tmp_path / "output"
    report = run(options(root, out, method="genre"), factory_of())
    assert report.exit_code == 0 and report.success_rate == 1.0 and report.total == 3
    assert {r.outcome for r in report.files} == {BY_MODEL}
    for case in cases:
        image = loadmat_output(out / case["output"])
        assert image.dtype == np.float32 and image.shape == expected_full_shape(SHAPE)
        reference = zero_filled_rss(case["kspace"]).transpose(3, 2, 1, 0)
        np.testing.assert_allclose(image, reference, rtol=1e-5, atol=1e-6)
    mats = {f for f in files_under(out) if f.endswith(".mat")}
    assert mats == {str(c["output"]) for c in cases}
    assert files_under(out) == mats | {"run_report.json"}     # no temp files left


def test_injected_model_failure_falls_back_and_counts_as_valid(tree, tmp_path):
    root, cases = tree
    failing_name = str(cases[1]["input"].relative_to(root))
    genre = FakeReconstructor("genre", fail_on={failing_name})
    report = run(options(root, tmp_path / "out"), factory_of(genre=genre))
    assert report.exit_code == 0 and report.success_rate == 1.0
    failed_over = result_for(report, cases[1])
    assert failed_over.outcome == BY_FALLBACK and failed_over.method == "cgsense"
    assert "injected model failure" in failed_over.reason
    assert [r.outcome for r in report.files].count(BY_MODEL) == 2
    assert loadmat_output(tmp_path / "out" / cases[1]["output"]).shape == expected_full_shape(SHAPE)
    text = report.format_text()
    assert "injected model failure" in text and "w = 3/3" in text


@pytest.mark.parametrize("bad_output", ["nan", "zeros", "shape"])
def test_invalid_model_output_falls_back(tree, tmp_path, bad_output):
    root, cases = tree
    report = run(options(root, tmp_path / "out"), factory_of(genre=FakeReconstructor("genre", output=bad_output)))
    assert report.success_rate == 1.0
    assert all(r.outcome == BY_FALLBACK and r.method == "cgsense" for r in report.files)
    for case in cases:
        image = loadmat_output(tmp_path / "out" / case["output"])
        assert np.isfinite(image).all() and image.any()


def test_second_fallback_when_cgsense_fails_too(tree, tmp_path):
    root, _ = tree
    everything = {str(p.relative_to(root)) for p in root.rglob("*_kus_*.mat")}
    factory = factory_of(genre=FakeReconstructor("genre", fail_on=everything),
                         cgsense=FakeReconstructor("cgsense", output="nan"))
    report = run(options(root, tmp_path / "out"), factory)
    assert report.exit_code == 0
    assert {r.method for r in report.files} == {"zerofilled"}
    assert all("genre" in r.reason and "cgsense" in r.reason for r in report.files)


def test_every_method_failing_fails_the_file(tree, tmp_path):
    root, _ = tree
    factory = factory_of(**{m: FakeReconstructor(m, output="nan") for m in ("genre", "cgsense", "zerofilled")})
    report = run(options(root, tmp_path / "out"), factory)
    assert report.exit_code == 1 and report.valid == 0
    assert all(r.outcome == FAILED and "every method failed" in r.reason for r in report.files)
    assert not any(f.endswith(".mat") for f in files_under(tmp_path / "out"))


def test_out_of_memory_retries_with_half_the_batch_size(tree, tmp_path):
    root, _ = tree
    genre = FakeReconstructor("genre", oom_above=2, batch_size=8)
    report = run(options(root, tmp_path / "out"), factory_of(genre=genre))
    assert report.exit_code == 0 and {r.outcome for r in report.files} == {BY_MODEL}
    assert genre.batch_size == 2


def test_missing_weights_switch_primary_to_cgsense_once(tree, tmp_path):
    root, _ = tree
    built = []

    def factory(method):
        built.append(method)
        if method == "genre":
            raise WeightsUnavailable("weights/genre_cmr.pt: file not found")
        return FakeReconstructor(method)

    report = run(options(root, tmp_path / "out"), factory)
    assert built.count("genre") == 1
    assert report.primary_method == "cgsense" and report.requested_method == "genre"
    assert {(r.outcome, r.method) for r in report.files} == {(BY_MODEL, "cgsense")}
    assert any("genre_cmr.pt" in note and "cgsense" in note for note in report.notes)
    assert "genre_cmr.pt" in report.format_text()
    assert report.exit_code == 0


def test_corrupt_input_is_reported_while_the_others_complete(tree, tmp_path):
    root, cases = tree
    cases[0]["input"].write_bytes(b"this is not a MAT file" * 10)
    out = tmp_path / "out"
    report = run(options(root, out), factory_of())
    assert report.exit_code == 1 and report.valid == 2 and report.total == 3
    broken = result_for(report, cases[0])
    assert broken.outcome == FAILED and str(cases[0]["input"]) in broken.reason
    assert not (out / cases[0]["output"]).exists()
    for case in cases[1:]:
        assert (out / case["output"]).is_file()
    saved = json.loads((out / "run_report.json").read_text())
    assert saved["exit_code"] == 1 and saved["files_total"] == 3 and saved["files_valid"] == 2
    assert saved["success_rate"] == pytest.approx(2 / 3)
    assert [f["file"] for f in saved["failures"]] == [broken.input_relative]
    assert "FAILED" in report.format_text()


def test_all_zero_kspace_fails_with_its_reason(tmp_path):
    root = tmp_path / "input"
    write_case(root, kspace=np.zeros(SHAPE, np.complex64))
    write_case(root, patient="P002")
    report = run(options(root, tmp_path / "out"), factory_of())
    reasons = {r.outcome: r.reason for r in report.files}
    assert reasons[FAILED] == "k-space is all zero" and report.exit_code == 1


def test_non_finite_kspace_is_zeroed_with_a_note(tmp_path):
    root = tmp_path / "input"
    case = write_case(root)
    kspace = case["kspace"].copy()
    kspace[0, 0, 0, 16, :3] = np.nan
    kspace[1, 1, 2, 16, 5] = np.inf
    matio.write_kspace_v73(case["input"], "kus", kspace)
    genre = FakeReconstructor("genre")
    report = run(options(root, tmp_path / "out"), factory_of(genre=genre))
    (result,) = report.files
    assert result.outcome == BY_MODEL
    assert any("4 non-finite" in note for note in result.notes)
    image = loadmat_output(tmp_path / "out" / case["output"])
    assert np.isfinite(image).all()


def test_missing_mask_is_derived_from_kspace(tmp_path):
    root = tmp_path / "input"
    case = write_case(root, mask=False)
    seen = []

    class Recording(FakeReconstructor):
        def reconstruct(self, kspace, mask, meta, progress=None):
            seen.append(np.array(mask))
            return super().reconstruct(kspace, mask, meta, progress)

    report = run(options(root, tmp_path / "out"), factory_of(genre=Recording("genre")))
    (result,) = report.files
    assert result.outcome == BY_MODEL and any("missing" in n and "derived" in n for n in result.notes)
    (mask,) = seen
    np.testing.assert_array_equal(mask, np.broadcast_to(case["sampling"], mask.shape))


def test_mask_of_wrong_shape_is_derived_and_2d_mask_is_broadcast(tmp_path):
    root = tmp_path / "input"
    bad = write_case(root, patient="P001")
    matio.write_mask_v73(bad["mask"], "mask", np.ones((7, 9)))
    good = write_case(root, patient="P002")
    seen = {}

    class Recording(FakeReconstructor):
        def reconstruct(self, kspace, mask, meta, progress=None):
            seen[meta.name.split("/")[-2]] = np.array(mask)
            return super().reconstruct(kspace, mask, meta, progress)

    report = run(options(root, tmp_path / "out"), factory_of(genre=Recording("genre")))
    assert report.exit_code == 0
    assert any("shape" in n and "derived" in n for n in result_for(report, bad).notes)
    assert result_for(report, good).notes == []
    for patient, case in (("P001", bad), ("P002", good)):
        assert seen[patient].shape == (SHAPE[0], SHAPE[3], SHAPE[4])
        np.testing.assert_array_equal(seen[patient], np.broadcast_to(case["sampling"], seen[patient].shape))


def test_large_volume_is_read_in_slabs_and_assembled(tmp_path):
    shape = (2, 5, 3, 32, 24)
    root = tmp_path / "input"
    case = write_case(root, shape=shape)
    genre = FakeReconstructor("genre")
    slice_bytes = 2 * 3 * 32 * 24 * 8
    report = run(options(root, tmp_path / "out", max_slab_bytes=2 * slice_bytes), factory_of(genre=genre))
    assert report.exit_code == 0
    assert [nz for _, nz in genre.calls] == [2, 2, 1]
    image = loadmat_output(tmp_path / "out" / case["output"])
    np.testing.assert_allclose(image, zero_filled_rss(case["kspace"]).transpose(3, 2, 1, 0), rtol=1e-5, atol=1e-6)


def test_resume_keeps_valid_outputs_and_redoes_corrupt_ones(tree, tmp_path):
    root, cases = tree
    out = tmp_path / "out"
    assert run(options(root, out), factory_of()).exit_code == 0
    (out / cases[0]["output"]).write_bytes(b"truncated")
    scipy.io.savemat(out / cases[1]["output"], {"img4ranking": np.ones((5, 5), np.float32)})  # wrong shape
    genre = FakeReconstructor("genre")
    report = run(options(root, out, resume=True), factory_of(genre=genre))
    assert report.exit_code == 0
    assert result_for(report, cases[2]).outcome == RESUMED
    assert {result_for(report, c).outcome for c in cases[:2]} == {BY_MODEL}
    assert len(genre.calls) == 2
    for case in cases:
        assert loadmat_output(out / case["output"]).shape == expected_full_shape(SHAPE)


def test_shards_cover_every_file_exactly_once(tree, tmp_path):
    root, cases = tree
    out = tmp_path / "out"
    first = run(options(root, out, shard=(0, 2)), factory_of())
    second = run(options(root, out, shard=(1, 2)), factory_of())
    done = [r.input_relative for r in first.files + second.files]
    assert sorted(done) == sorted(str(c["input"].relative_to(root)) for c in cases)
    assert len(first.files) == 2 and len(second.files) == 1
    assert (out / "run_report.shard0of2.json").is_file() and (out / "run_report.shard1of2.json").is_file()
    for case in cases:
        assert (out / case["output"]).is_file()


def test_shard_comes_from_torchrun_environment(tree, tmp_path, monkeypatch):
    root, _ = tree
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    report = run(options(root, tmp_path / "out"), factory_of())
    assert report.shard == (1, 3) and len(report.files) == 1
    assert report.other_shards_files == 2
    assert "shard 1/3" in report.format_text() and "hold 2 files" in report.format_text()


def test_rank_and_world_size_without_torchrun_are_ignored_with_a_note(tree, tmp_path, monkeypatch):
    root, cases = tree
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    report = run(options(root, tmp_path / "out"), factory_of())
    assert report.shard == (0, 1) and len(report.files) == len(cases) and report.exit_code == 0
    assert any("not launched by torchrun" in note for note in report.notes)


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"RANK": "3", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK=3 needs 0 <= RANK < WORLD_SIZE=2"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be >= 1"),
])
def test_malformed_shard_environment_is_a_setup_error(tree, tmp_path, monkeypatch, env, message):
    root, _ = tree
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RunSetupError, match=re.escape(message)):
        run(options(root, tmp_path / "out"), factory_of())
    assert not (tmp_path / "out").exists()       # nothing touched


def test_nothing_is_written_under_a_read_only_input_root(tree, tmp_path):
    root, cases = tree
    (tmp_path / "out" / "Cine").mkdir(parents=True)
    stale = tmp_path / "out" / "Cine" / ".cine_sax_kus_Uniform4.mat.1234.tmp"
    stale.write_bytes(b"left over by a killed run")
    before = snapshot(root)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    for path in modes:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        report = run(options(root, tmp_path / "out"), factory_of())
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert report.exit_code == 0
    assert snapshot(root) == before
    leftovers = [f for f in files_under(tmp_path / "out") if not f.endswith(".mat") and f != "run_report.json"]
    assert leftovers == []


def test_unwritable_or_nested_output_root_is_a_setup_error(tree, tmp_path):
    root, _ = tree
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RunSetupError, match="not writable"):
        run(options(root, blocker / "out"), factory_of())
    with pytest.raises(RunSetupError, match="inside the input root"):
        run(options(root, root / "out"), factory_of())
    assert not (root / "out").exists()


def test_empty_input_tree_is_an_error(tmp_path):
    root = tmp_path / "input"
    (root / "Cine" / "TestSet").mkdir(parents=True)
    (root / "Cine" / "TestSet" / "notes.csv").write_text("x")
    report = run(options(root, tmp_path / "out"), factory_of())
    assert report.total == 0 and report.exit_code == 1
    assert "no files to reconstruct" in report.error
    assert json.loads((tmp_path / "out" / "run_report.json").read_text())["exit_code"] == 1


# --------------------------------------------------------------------------------------------------------
# report and checks

def test_report_groups_success_rate_and_exit_code():
    def row(name, outcome, pattern="Uniform", af=4, seconds=1.0):
        return FileResult(name, name, "Cine", pattern, af, outcome=outcome, seconds=seconds,
                          reason="boom" if outcome == FAILED else None)

    report = RunReport("in", "out", "genre", "genre", (0, 1), files=[
        row("a", BY_MODEL), row("b", BY_FALLBACK), row("c", FAILED), row("d", RESUMED, af=8),
        row("e", BY_MODEL, pattern="ktRadial", af=12, seconds=2.5)])
    assert report.total == 5 and report.valid == 4 and report.success_rate == pytest.approx(0.8)
    assert report.exit_code == 1
    groups = {(g.pattern, g.acceleration): g for g in report.groups()}
    assert list(groups) == [("Uniform", "4"), ("Uniform", "8"), ("ktRadial", "12")]
    uniform4 = groups[("Uniform", "4")]
    assert (uniform4.files, uniform4.by_model, uniform4.by_fallback, uniform4.failed) == (3, 1, 1, 1)
    assert uniform4.seconds == pytest.approx(3.0)
    saved = report.to_json()
    assert saved["files_valid"] == 4 and saved["failures"] == [{"file": "c", "reason": "boom"}]
    report.files[2].outcome = BY_MODEL
    assert report.exit_code == 0 and report.success_rate == 1.0


@pytest.mark.parametrize("image, problem", [
    (np.ones((2, 3), np.float32), None),
    (np.ones((2, 4), np.float32), "shape"),
    (np.zeros((2, 3), np.float32), "all zero"),
    (np.array([[1, np.nan, 1], [1, 1, 1]], np.float32), "non-finite"),
    (np.ones((2, 3), np.complex64), "dtype"),
])
def test_image_problem(image, problem):
    found = image_problem(image, (2, 3))
    assert found is None if problem is None else problem in found
