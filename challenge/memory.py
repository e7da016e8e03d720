"""The process's peak host memory, bounded: how many slices of a volume are read and reconstructed at once.

``--max-memory-gb`` (alias ``--max-slab-gb``) is the bound on the whole process's resident memory, not on one
buffer. Before reading a file the reader measures what the process already holds and plans slabs of slices so
that, with the copies the pipeline makes, the peak stays under the bound:

    peak ~= resident now + IMAGE_COPIES x image + SLAB_COPIES x slab k-space + SLICE_COPIES[method] x slice k-space

- image: the volume's (nt, nz, ny, nx) float32 image, its MATLAB-order output copy and the writer's re-read;
- slab: the slab being reconstructed, the one waiting in the prefetch queue and the one being read (with the
  reader's finite test and derived mask);
- slice: the reconstructor's working tensors for one slice (it works slice by slice).

The factors are measured with ``python -m benchmarks.peak_memory`` on the largest real shapes (docs/faults.md,
"Peak memory"). A file whose single slice cannot fit fails with its reason before anything is allocated.
"""
from __future__ import annotations

import os
import resource

GIB = 2 ** 30
# 2025 organisers' machine: 64 GB host RAM (shared/docs/deployment.md); a quarter leaves room for the driver,
# the page cache and the docker overhead the organisers' monitor counts.
DEFAULT_MAX_MEMORY_BYTES = 16 * GIB
KSPACE_ITEM_BYTES = 8                 # complex64
IMAGE_ITEM_BYTES = 4                  # float32
IMAGE_COPIES = 3
SLAB_COPIES = 4.0
# one slice's working memory / its k-space bytes, measured on a 12 x 10 x 246 x 512 slice (benchmarks.peak_memory
# --slice-only, docs/faults.md): zerofilled 5.1, cgsense 7.6; rounded up. GENRE's CPU working memory is not
# measured: it gets CG-SENSE's, which the fallback chain needs on the same slab anyway.
SLICE_COPIES = {"zerofilled": 6.0, "cgsense": 8.5, "genre": 8.5}
UNKNOWN_METHOD_SLICE_COPIES = max(SLICE_COPIES.values())


class MemoryBoundError(Exception):
    """A volume that cannot be reconstructed within the memory bound; the message says how much it needs."""


def resident_bytes() -> int:
    """The process's resident memory now (Linux /proc), else its peak so far (getrusage)."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def plan_slabs(shape: tuple[int, int, int, int, int], methods: list[str], max_memory_bytes: int,
               max_slab_bytes: int | None = None, in_use: int | None = None) -> list[slice]:
    """Slabs of slices along nz for k-space ``shape`` (nt, nz, nc, ny, nx) so that the process stays under
    ``max_memory_bytes`` while any of ``methods`` runs; ``max_slab_bytes`` caps a slab's k-space as well.
    Raises MemoryBoundError when not even one slice fits."""
    nt, nz, nc, ny, nx = (int(size) for size in shape)
    if nz == 0:
        return [slice(0, 0)]
    slice_bytes = nt * nc * ny * nx * KSPACE_ITEM_BYTES
    image_bytes = nt * nz * ny * nx * IMAGE_ITEM_BYTES
    slice_copies = max((SLICE_COPIES.get(method, UNKNOWN_METHOD_SLICE_COPIES) for method in methods),
                       default=UNKNOWN_METHOD_SLICE_COPIES)
    in_use = resident_bytes() if in_use is None else in_use
    fixed = in_use + IMAGE_COPIES * image_bytes + slice_copies * slice_bytes
    per_slab = int((max_memory_bytes - fixed) // (SLAB_COPIES * max(1, slice_bytes)))
    if per_slab < 1:
        need = fixed + SLAB_COPIES * slice_bytes
        raise MemoryBoundError(
            f"k-space of shape {tuple(shape)} needs at least {need / GIB:.2f} GiB of memory (one slice of k-space "
            f"{slice_bytes / GIB:.2f} GiB, the image {image_bytes / GIB:.2f} GiB, {in_use / GIB:.2f} GiB already "
            f"in use), above the bound of {max_memory_bytes / GIB:.2f} GiB (--max-memory-gb); not read")
    if max_slab_bytes is not None:
        per_slab = min(per_slab, max(1, max_slab_bytes // max(1, slice_bytes)))
    per_slab = min(per_slab, nz)
    return [slice(start, min(start + per_slab, nz)) for start in range(0, nz, per_slab)]
