"""benchmarks.bench_allocator: one measured subprocess per heap setting, the opt-out reaches the child, the table."""
import sys

from benchmarks.bench_allocator import BEGIN, END, Run, format_section, measure


def test_measure_runs_the_command_with_and_without_the_opt_out(tmp_path):
    script = "import os, sys; sys.exit(3 if os.environ.get('GENRE_GLIBC_MALLOC_DEFAULTS') == '1' else 0)"
    defaults = measure("probe", [sys.executable, "-c", script], False, tmp_path / "a.log")
    retained = measure("probe", [sys.executable, "-c", script], True, tmp_path / "b.log")
    assert (defaults.exit_code, retained.exit_code) == (3, 0)
    assert defaults.heap == "glibc defaults" and retained.heap == "retained"
    assert retained.peak_rss_mib > 1 and retained.wall_seconds > 0 and retained.user_seconds >= 0


def test_section_reports_the_system_share_and_the_speed_up():
    runs = [Run("predict", "glibc defaults", 0, 100.0, 60.0, 40.0, 3000.0),
            Run("predict", "retained", 0, 50.0, 58.0, 2.0, 4500.0)]
    machine = {"cpu": "x", "cores": 2, "usable_cores": 2, "memory_gib": 1, "gpu": None, "python": "3", "torch": "2"}
    text = format_section(runs, (12, 1, 10, 20, 40), {"predict": "python predict.py"}, "cmd", machine)
    assert text.startswith(BEGIN) and text.rstrip().endswith(END)
    assert "| predict | glibc defaults | 0 | 100.0 | 60.0 | 40.0 | 40% | 3000 | 1.00x |" in text
    assert "| predict | retained | 0 | 50.0 | 58.0 | 2.0 | 3% | 4500 | 2.00x |" in text
