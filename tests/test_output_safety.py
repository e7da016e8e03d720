"""Issue 17 in process: outcomes only after the bytes are on disk, nothing valid destroyed, no lost file.

Disk-full, writer and allocation failures are injected here (monkeypatched), so these run everywhere; the fault
tree (tests/test_faults.py) runs the real ones (tmpfs, closed pipes, planted folders) where it can.
"""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from challenge import matio, memory, output_safety, pipeline, runner
from challenge.report import BY_MODEL, FAILED, RunReport
from challenge.runner import RunOptions, run
from challenge.safe_io import SafeStream
from tests.test_runner import SHAPE, FakeReconstructor, expected_full_shape, factory_of, write_case

REPO = Path(__file__).resolve().parent.parent


def options(root, out, **kwargs):
    return RunOptions(input_root=root, output_root=out, method="genre", device="cpu", **kwargs)


@pytest.fixture
def two(tmp_path):
    root = tmp_path / "input"
    return root, [write_case(root, patient=f"P00{i}", seed=i) for i in (1, 2)]


def rows(report):
    return {Path(r.input_relative).parts[3]: r for r in report.files}


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_disk_full_on_a_rerun_keeps_the_earlier_valid_outputs(two, tmp_path, monkeypatch):
    root, cases = two
    out = tmp_path / "out"
    assert run(options(root, out), factory_of()).exit_code == 0
    before = {k: v for k, v in files_under(out).items() if k.endswith(".mat")}

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"MATLAB 5.0 half")       # a partial temporary file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(matio.scipy.io, "savemat", full_disk)
    report = run(options(root, out), factory_of())
    assert report.exit_code == 1 and report.valid == 0
    for row in report.files:
        assert row.outcome == FAILED and "No space left on device" in row.reason
        assert any("validates and was kept" in note for note in row.notes)
    after = files_under(out)
    assert {k: after[k] for k in before} == before                      # byte for byte
    assert not [name for name in after if name.endswith(".tmp")]


def test_a_failed_write_never_counts_and_the_writer_survives_any_error(two, tmp_path, monkeypatch):
    root, cases = two
    real = output_safety.write_output
    calls = []

    def flaky(path, *args):
        calls.append(path)
        if len(calls) == 1:
            raise SystemExit("the writer's first file dies hard")     # not an Exception: must not kill the writer
        return real(path, *args)
    monkeypatch.setattr(output_safety, "write_output", flaky)
    report = run(options(root, tmp_path / "out"), factory_of())
    first, second = (rows(report)[p] for p in ("P001", "P002"))
    assert first.outcome == FAILED and "SystemExit" in first.reason and first.method is None
    assert second.outcome == BY_MODEL
    assert not (tmp_path / "out" / cases[0]["output"]).exists() and (tmp_path / "out" / cases[1]["output"]).is_file()


def test_outcome_is_valid_only_after_the_rename(two, tmp_path, monkeypatch):
    """The row is still failed while the temporary file is checked: the check sees no valid row yet."""
    root, _ = two
    seen = []
    real_validate = matio.validate_output

    def validate(path, shape):
        seen.append(Path(path).name)
        return real_validate(path, shape)
    monkeypatch.setattr(matio, "validate_output", validate)
    report = run(options(root, tmp_path / "out"), factory_of())
    assert report.exit_code == 0
    assert all(name.startswith(".") and name.endswith(".tmp") for name in seen)   # the temporary, before rename


def test_an_invalid_new_output_never_replaces_an_earlier_file(two, tmp_path, monkeypatch):
    root, cases = two
    out = tmp_path / "out"
    assert run(options(root, out), factory_of()).exit_code == 0
    earlier = (out / cases[0]["output"]).read_bytes()

    real_validate = matio.validate_output

    def broken_check(path, shape):
        if Path(path).name.endswith(".tmp"):          # every new output fails its re-read
            raise matio.OutputInvalid(f"{path}: re-read differs (injected)")
        return real_validate(path, shape)
    monkeypatch.setattr(matio, "validate_output", broken_check)
    report = run(options(root, out), factory_of())
    assert all(r.outcome == FAILED and "injected" in r.reason for r in report.files)
    assert (out / cases[0]["output"]).read_bytes() == earlier
    assert all(any("validates and was kept" in n for n in r.notes) for r in report.files)


def test_stale_invalid_output_of_a_failed_input_is_moved_aside(two, tmp_path):
    root, cases = two
    out = tmp_path / "out"
    stale = out / cases[0]["output"]
    stale.parent.mkdir(parents=True)
    scipy.io.savemat(stale, {"img4ranking": np.ones((5, 5), np.float32)})
    cases[0]["input"].write_bytes(b"not k-space")                  # this input now fails
    report = run(options(root, out), factory_of())
    row = rows(report)["P001"]
    assert row.outcome == FAILED and any("moved aside" in note for note in row.notes)
    assert not stale.exists()
    moved = list((out / output_safety.MOVED_ASIDE).rglob("*"))
    assert [p.name for p in moved if p.is_file()] == [stale.name + output_safety.MOVED_SUFFIX]
    assert rows(report)["P002"].outcome == BY_MODEL


def test_valid_earlier_output_of_an_input_that_now_fails_is_kept_not_counted(two, tmp_path):
    root, cases = two
    out = tmp_path / "out"
    assert run(options(root, out), factory_of()).exit_code == 0
    everything_fails = factory_of(genre=FakeReconstructor("genre", fail_on={str(cases[0]["input"].relative_to(root))}),
                                  cgsense=FakeReconstructor("cgsense", fail_on={str(cases[0]["input"].relative_to(root))}),
                                  zerofilled=FakeReconstructor("zerofilled",
                                                               fail_on={str(cases[0]["input"].relative_to(root))}))
    report = run(options(root, out), everything_fails)
    row = rows(report)["P001"]
    assert row.outcome == FAILED and any("validates and was kept" in n for n in row.notes)
    assert scipy.io.loadmat(out / cases[0]["output"])["img4ranking"].shape == expected_full_shape(SHAPE)
    assert report.exit_code == 1


def test_output_link_to_an_input_is_refused_and_the_input_untouched(two, tmp_path):
    root, cases = two
    out = tmp_path / "out"
    link = out / cases[0]["output"]
    link.parent.mkdir(parents=True)
    link.symlink_to(cases[0]["input"])
    before = cases[0]["input"].read_bytes()
    report = run(options(root, out), factory_of())
    row = rows(report)["P001"]
    assert row.outcome == FAILED and "resolves to the input file" in row.reason
    assert cases[0]["input"].read_bytes() == before and link.is_symlink()
    assert rows(report)["P002"].outcome == BY_MODEL


def test_report_on_a_full_disk_is_compact_then_absent_and_the_summary_says_so(tmp_path, monkeypatch):
    report = RunReport(input_root="in", output_root=str(tmp_path), requested_method="genre", primary_method="genre",
                       shard=(0, 1))
    path = tmp_path / "run_report.json"
    path.write_text('{"an": "earlier run"}')
    real_write = RunReport.write_json

    def rows_do_not_fit(self, target, rows=True):
        if rows:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, target, rows)
    monkeypatch.setattr(RunReport, "write_json", rows_do_not_fit)
    report.save(path)
    assert '"compact"' in path.read_text() and report.exit_code == 1
    assert "could not be written" in report.format_text() and "exit code 1" in report.format_text()

    def nothing_fits(self, target, rows=True):
        Path(str(target) + ".tmp").write_text("{trunc")
        real_unlink = Path(str(target) + ".tmp")
        real_unlink.unlink()
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(RunReport, "write_json", nothing_fits)
    report.error = None
    report.save(path)
    assert not path.exists() and (tmp_path / "run_report.json.stale").is_file()
    assert "renamed to run_report.json.stale" in report.error


def test_write_json_leaves_no_truncated_temporary(tmp_path, monkeypatch):
    report = RunReport(input_root="in", output_root=str(tmp_path), requested_method="genre", primary_method="genre",
                       shard=(0, 1))
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OSError):
        report.write_json(tmp_path / "run_report.json")
    assert list(tmp_path.iterdir()) == []


def test_allocation_failure_fails_its_file_only(tmp_path, monkeypatch):
    root = tmp_path / "input"
    victim = write_case(root, patient="P001", shape=(3, 3, 4, 32, 40))
    other = write_case(root, patient="P002")
    real_zeros = np.zeros

    def zeros(shape, *args, **kwargs):
        if tuple(np.atleast_1d(shape)) == (3, 3, 32, 40):
            raise MemoryError("Unable to allocate 366. GiB (injected)")
        return real_zeros(shape, *args, **kwargs)
    monkeypatch.setattr(pipeline.np, "zeros", zeros)
    report = run(options(root, tmp_path / "out"), factory_of())
    assert rows(report)["P001"].outcome == FAILED and "MemoryError" in rows(report)["P001"].reason
    assert rows(report)["P002"].outcome == BY_MODEL and report.exit_code == 1
    assert (tmp_path / "out" / "run_report.json").is_file()
    assert victim and other


def test_memory_plan():
    gib = 2 ** 30
    shape = (12, 12, 10, 246, 512)
    slice_bytes = 12 * 10 * 246 * 512 * 8
    assert memory.plan_slabs(shape, ["zerofilled"], 16 * gib, in_use=gib) == [slice(0, 12)]
    slabs = memory.plan_slabs(shape, ["cgsense"], 3 * gib, in_use=gib)
    per = slabs[0].stop
    fixed = gib + memory.IMAGE_COPIES * 12 * 12 * 246 * 512 * 4 + memory.SLICE_COPIES["cgsense"] * slice_bytes
    assert fixed + memory.SLAB_COPIES * per * slice_bytes <= 3 * gib < fixed + memory.SLAB_COPIES * (per + 1) * slice_bytes
    assert memory.plan_slabs(shape, ["zerofilled"], 16 * gib, max_slab_bytes=2 * slice_bytes, in_use=0)[0] == slice(0, 2)
    with pytest.raises(memory.MemoryBoundError, match=r"needs at least .* GiB.*--max-memory-gb"):
        memory.plan_slabs((12, 200, 2, 8192, 5000), ["cgsense"], 16 * gib, in_use=gib)


def test_safe_stream_survives_a_closed_pipe():
    read, write = os.pipe()
    stream = SafeStream(os.fdopen(write, "w", buffering=1))
    os.close(read)
    stream.write("x" * 100000 + "\n")
    stream.flush()
    assert stream.broken is not None and "BrokenPipe" in stream.broken
    stream.write("more\n")      # dropped, no error


def test_predict_into_a_pipe_closed_after_two_lines_finishes(two, tmp_path):
    """`predict.py ... 2>&1 | head -2`: the run must neither hang nor die, and its report is written."""
    root, _ = two
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(REPO / "predict.py"), "--input", str(root), "--output", str(out),
                                "--method", "zerofilled", "--device", "cpu", "--log-level", "DEBUG"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    process.stdout.readline()
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=240) == 0
    assert (out / "run_report.json").is_file()


def test_an_unexpected_error_outside_any_file_still_writes_the_report(two, tmp_path, monkeypatch):
    root, _ = two

    def broken_discovery(root):
        raise RuntimeError("injected: the walk broke")
    monkeypatch.setattr(runner, "discover", broken_discovery)
    report = run(options(root, tmp_path / "out"), factory_of())
    assert report.exit_code == 1 and "injected: the walk broke" in report.error
    saved = (tmp_path / "out" / "run_report.json").read_text()
    assert "injected: the walk broke" in saved
