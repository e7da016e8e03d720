"""benchmarks.bench_loader on a tiny tree: the tree is written once and reused, every worker count is measured,
the section lands in the markdown file."""
import numpy as np
import pytest

from benchmarks import bench_loader
from challenge.matio import read_kspace


def test_bench_loader_writes_a_reusable_tree_and_its_section(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_loader, "SHAPE", (4, 2, 2, 24, 32))
    # counting the paper generator's FLOPs takes minutes on a loaded CPU; 1 and 0.1 TFLOP per forward stand in
    monkeypatch.setattr(bench_loader, "flops_per_output_slice",
                        lambda config, *shape: 1e12 if config.cascades > 10 else 1e11)
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n\nkept\n")
    args = ["--tree", str(tmp_path / "tree"), "--files", "2", "--samples", "4", "--out", str(out)]
    assert bench_loader.main(args) == 0
    files = sorted((tmp_path / "tree").rglob("cine_sax.mat"))
    assert len(files) == 2 and read_kspace(files[0]).kspace.shape == (4, 2, 2, 24, 32)
    assert np.abs(read_kspace(files[0]).kspace).min() > 0
    stamps = [f.stat().st_mtime_ns for f in files]
    assert bench_loader.main(args) == 0
    assert [f.stat().st_mtime_ns for f in files] == stamps            # reused, not rewritten
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n") and text.count("<!-- bench_loader:begin -->") == 1
    rows = [line for line in text.splitlines() if line.startswith(("| 0 | 1 |", "| 1 | 1 |", "| 2 | 1 |", "| 2 | 4 |"))]
    assert len(rows) == 4 and "| paper | paper | 3.000 | 10.0 |" in text
    assert "| shipped (preset cpu) | small-10-view-sharing | 0.300 | 100.0 |" in text


def test_measured_step_rates_replace_the_flop_estimate_and_every_grouping_is_measured(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_loader, "SHAPE", (4, 2, 2, 24, 32))
    monkeypatch.setattr(bench_loader, "flops_per_output_slice",
                        lambda config, *shape: 1e12 if config.cascades > 10 else 1e11)
    out = tmp_path / "bench.md"
    args = ["--tree", str(tmp_path / "tree"), "--files", "2", "--samples", "4", "--workers", "1", "2",
            "--grouped", "2", "3", "--measured-rates", "shipped=2.3", "--rates-source", "an H200", "--out", str(out)]
    assert bench_loader.main(args) == 0
    text = out.read_text()
    assert "| shipped (preset cpu) | small-10-view-sharing | 0.300 | 2.30 (measured) |" in text
    assert "| paper | paper | 3.000 | 10.0 |" in text                 # not given: still the estimate
    assert "measured where marked (an H200)" in text and "--measured-rates shipped=2.3" in text
    assert sum(line.startswith(("| 2 | 2 |", "| 2 | 3 |")) for line in text.splitlines()) == 2


def test_measured_rates_must_name_a_configuration():
    with pytest.raises(ValueError, match="not shipped=RATE"):
        bench_loader.parse_rates(["fast=3"])


def test_loader_timing_counts_windows_polls_each_and_times_after_the_first():
    import math
    import time

    from benchmarks.loader_rate import time_loader

    def slow(n, first_wait):
        for i in range(n):
            time.sleep(first_wait if i == 0 else 0.01)
            yield i

    polls = []
    timed = time_loader(slow(5, 0.2), lambda: polls.append(1))
    assert timed.windows == 5 and len(polls) == 5
    assert timed.first_s >= 0.2                    # the first window's wait is not in the rate
    assert 0 < timed.windows_per_s <= 4 / 0.04     # 4 windows after the first, >= 10 ms each
    assert math.isnan(time_loader(iter([0])).windows_per_s)
    with pytest.raises(ValueError, match="no window"):
        time_loader(iter([]))
