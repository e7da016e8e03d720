"""Process-wide heap settings: keep freed tensor memory in the process instead of returning it to the kernel.

glibc serves blocks above its mmap threshold (128 KiB, adaptive up to 32 MiB) with fresh mmap()s and unmaps
them on free, so every large temporary of a reconstruction or a training step is page-faulted in from zero
again: on the 2-core machines here that was 60-75% of predict.py's CPU time in the kernel. Raising the mmap
threshold and the trim threshold makes freed blocks reusable by the next operation. The cost is a higher
resident peak (freed memory stays mapped), which docs/benchmarks.md measures beside the speed.

Called once at the start of predict.py and of training; children forked afterwards (DataLoader workers)
inherit the settings. ``GENRE_GLIBC_MALLOC_DEFAULTS=1`` leaves glibc's defaults (for comparisons).
"""
import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
OPT_OUT = "GENRE_GLIBC_MALLOC_DEFAULTS"
MMAP_THRESHOLD = 1 << 30          # only blocks of 1 GiB and more still come from mmap
TRIM_THRESHOLD = 2 ** 31 - 1      # mallopt takes an int: the largest free top of heap kept


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process. True when both settings took effect; False
    on another C library, when opted out by the environment, or when glibc refused a value."""
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False          # musl, macOS, Windows: nothing to tune here
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
