"""How fast a training loader delivers windows: the one timing rule of bench_loader and gpu_check's rates."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoaderRate:
    first_s: float          # to the first window: worker start and the first read, paid once per epoch
    windows_per_s: float    # after the first window (nan with fewer than two)
    windows: int


def time_loader(loader: Iterable, each: Callable[[], None] | None = None) -> LoaderRate:
    """Iterate ``loader`` to its end (one epoch) and time it; ``each`` runs after every window (a poll that
    must see workers before they exit), inside the timed span."""
    started = time.perf_counter()
    first, count = None, 0
    for _ in loader:
        count += 1
        if first is None:
            first = time.perf_counter()
        if each is not None:
            each()
    if first is None:
        raise ValueError("the loader yielded no window")
    done = time.perf_counter()
    rate = (count - 1) / (done - first) if count > 1 and done > first else float("nan")
    return LoaderRate(first - started, rate, count)
