"""Build-time check that the image's torch can run on the organisers' GPU (a V100, sm_70).

Decides from what is compiled into the torch binary, never from a live device: `docker build` sees no GPU,
and torch <= 2.6's `torch.cuda.get_arch_list()` returns [] whenever `torch.cuda.is_available()` is False
(later versions test `torch.cuda._is_compiled()` instead), so asking it would fail every build on the
organisers' base. `torch._C._cuda_getArchFlags()` returns the compiled arch flags without a device on both.

    python docker/check_torch.py [--require sm_70]     # exit 0 and one line, or exit 1 and the reason
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

REQUIRED_ARCH = "sm_70"


def compiled_arch_list(torch: ModuleType) -> list[str]:
    """The CUDA architectures compiled into this torch, read without a device ([] for a CPU build)."""
    if not torch.version.cuda:
        return []
    get_flags = getattr(torch._C, "_cuda_getArchFlags", None)
    if get_flags is not None:
        return (get_flags() or "").split()
    # A torch without the private binding: get_arch_list() is only device-free where it tests _is_compiled().
    return list(torch.cuda.get_arch_list())


def check(torch: ModuleType, required: str = REQUIRED_ARCH) -> str | None:
    """None when `torch` is a CPU build or a CUDA build compiled for `required`; otherwise the reason."""
    if not torch.version.cuda:
        return None
    arches = compiled_arch_list(torch)
    if not arches:
        return (f"torch {torch.__version__} is a CUDA {torch.version.cuda} build but its compiled arch list "
                f"cannot be read without a device; cannot confirm {required}")
    if required not in arches:
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) lacks {required}: {' '.join(arches)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require", default=REQUIRED_ARCH, help="compiled architecture the image needs")
    args = parser.parse_args(argv)
    import torch

    problem = check(torch, args.require)
    if problem:
        print(f"check_torch: FAIL: {problem}", file=sys.stderr)
        return 1
    if torch.version.cuda:
        print(f"check_torch: torch {torch.__version__}, CUDA {torch.version.cuda}, compiled for "
              f"{' '.join(compiled_arch_list(torch))}: has {args.require}")
    else:
        print(f"check_torch: torch {torch.__version__} is a CPU build: no CUDA architecture to check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
