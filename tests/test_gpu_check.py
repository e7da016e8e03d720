"""benchmarks/gpu_check.py (make gpu-check): its dry mode runs every check on the CPU at tiny sizes; a failing,
hanging or dying check is recorded and the others still run; the time budget holds."""
import json
import sys
import time

import numpy as np
import pytest

from benchmarks import gpu_check, gpu_sections
from benchmarks.gpu_check import (ERROR, SKIPPED, TIMEOUT, default_options, main, run_checks, run_isolated,
                                  write_tiny_weights)
from benchmarks.gpu_sections import CHECKS, PASS, max_relative_error
from challenge.matio import write_output


def dry_options(tmp_path):
    options = default_options(True, tmp_path, None, None)
    write_tiny_weights(options.weights)
    return options


@pytest.mark.slow
def test_dry_run_passes_every_check_and_writes_the_report(tmp_path):
    out = tmp_path / "gpu.md"
    code = main(["--dry", "--in-process", "--work", str(tmp_path / "work"), "--out", str(out)])
    report = out.read_text()
    results = json.loads((tmp_path / "work" / "gpu_check.json").read_text())
    assert [r["name"] for r in results] == list(CHECKS)
    assert {r["name"]: r["status"] for r in results} == dict.fromkeys(CHECKS, PASS), report
    assert code == 0
    assert "**Dry run on the CPU**" in report and f"{len(CHECKS)} of {len(CHECKS)} checks passed" in report
    for name in CHECKS:
        assert f"## {name}: PASS" in report
    predict_rows = next(r for r in results if r["name"] == "predict")["rows"]
    assert [row["run"] for row in predict_rows] == ["cpu", "cuda fp32", "cuda fp16"]
    assert all(row["w (scorer)"] == "1.000" and row["ran as"] == "genre" for row in predict_rows)
    oom = next(r for r in results if r["name"] == "oom_retry")["rows"]
    assert oom[-1]["batch sizes tried"] == "2 1"            # the injected OOM halved the batch once


def test_a_failing_check_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(options):
        raise RuntimeError("NCCL error: unhandled system error")
    monkeypatch.setitem(CHECKS, "ddp", broken)
    results = run_checks(dry_options(tmp_path), ["ddp", "environment"], budget_s=60, isolate=False)
    assert [r.status for r in results] == [ERROR, PASS]
    assert "NCCL error" in results[0].summary and "Traceback" in results[0].error
    report = gpu_check.format_report(results, "cmd", "machine", True, 60, 1)
    assert "## ddp: ERROR" in report and "NCCL error" in report and "## environment: PASS" in report


def test_checks_are_not_started_once_the_budget_is_used_up(tmp_path):
    results = run_checks(dry_options(tmp_path), ["environment", "ddp"], budget_s=1, isolate=False)
    assert [r.status for r in results] == [SKIPPED, SKIPPED]


def test_an_isolated_check_that_hangs_is_killed_and_one_that_dies_is_recorded(tmp_path):
    options = dry_options(tmp_path)
    started = time.monotonic()
    hung = run_isolated("ddp", options, timeout=1, command=[sys.executable, "-c", "import time; time.sleep(60)"])
    assert hung.status == TIMEOUT and time.monotonic() - started < 30
    died = run_isolated("training", options, timeout=30, command=[
        sys.executable, "-c", "import sys; print('CUDA error: an illegal memory access'); sys.exit(134)"])
    assert died.status == ERROR and "status 134" in died.summary and "illegal memory access" in died.error


def test_an_isolated_check_reports_through_its_result_file(tmp_path):
    options = dry_options(tmp_path)
    result_path = tmp_path / "results" / "environment.result.json"
    payload = {"name": "environment", "status": "FAIL", "seconds": 0.0, "summary": "torch sees no CUDA device",
               "rows": [{"item": "CUDA available", "value": "False"}], "notes": [], "error": ""}
    writer = f"import json; open({str(result_path)!r}, 'w').write(json.dumps({payload!r}))"
    result = run_isolated("environment", options, timeout=30, command=[sys.executable, "-c", writer])
    assert result.status == "FAIL" and result.rows == payload["rows"]


def test_max_relative_error_is_relative_to_each_files_peak_and_infinite_for_a_missing_file(tmp_path):
    reference = np.full((4, 3, 2), 10.0, np.float32)
    other = reference.copy()
    other[0, 0, 0] = 10.5
    for root, array in ((tmp_path / "cpu", reference), (tmp_path / "cuda", other)):
        write_output(root / "P001" / "a.mat", array)
    error, files = max_relative_error(tmp_path / "cpu", tmp_path / "cuda")
    assert files == 1 and abs(error - 0.05) < 1e-6
    write_output(tmp_path / "cpu" / "P001" / "b.mat", reference)
    assert max_relative_error(tmp_path / "cpu", tmp_path / "cuda")[0] == float("inf")


def test_options_survive_the_trip_to_a_check_process(tmp_path):
    options = dry_options(tmp_path)
    options.deadline = 123.5
    assert gpu_sections.CheckOptions.from_json(options.to_json()) == options
