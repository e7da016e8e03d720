"""Where a measurement came from, and how its record is written.

The machine a number was measured on (CPU model, cores, memory, GPU, Python and torch versions), for the
records of trained weights (training/) and the tables in docs/ (benchmarks/); and strict JSON for those
records and the scorer's output: non-finite floats become null, as the organisers' scorer writes them.
"""
import math
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() where that is unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_summary() -> dict:
    """CPU model, logical cores (and those this process may use), memory, GPU (None without CUDA)."""
    import torch   # only for the GPU name and version: the rest must not need it

    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2 ** 30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "torch": torch.__version__,
    }


def format_machine(machine: dict) -> str:
    """One line of machine_summary() for a table's header."""
    gpu = machine["gpu"] or "none"
    return (f"{machine['cpu']}, {machine['cores']} logical cores ({machine['usable_cores']} usable), "
            f"{machine['memory_gib']} GiB RAM; GPU: {gpu}; Python {machine['python']}, torch {machine['torch']}")


def json_safe(value):
    """``value`` made fit for json.dumps(..., allow_nan=False): non-finite floats -> None, dict keys -> str,
    tuples -> lists, paths -> str, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
