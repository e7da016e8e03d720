"""The MATLAB arithmetic the organisers' code relies on, in one place: rounding, centring (zpad/crop), size().

The organisers' mask generators, ACS placement and run4Ranking crop are MATLAB; where Python's defaults differ
(round(42.5) is 42 in Python, 43 in MATLAB; the central block of an odd axis; trailing singleton dimensions)
every caller uses these rules: model.acs (ACS region), challenge.masks (mask generators) and
challenge.rules.output_array (run4Ranking crop, the img4ranking array's shape).
"""
from typing import Sequence

import numpy as np


def matlab_round(x):
    """MATLAB round: halves away from zero (Python's round(42.5) is 42, MATLAB's 43); a scalar gives an int,
    an array a float array."""
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    # compare the fraction (not floor(x + 0.5)): 0.49999999999999994 + 0.5 rounds up to 1.0 in floating point
    rounded = np.sign(x) * (whole + (magnitude - whole >= 0.5))
    return int(rounded) if np.ndim(rounded) == 0 else rounded


def centred_start(length: int, size: int) -> int:
    """0-based first index of the ``size`` central entries of an axis of ``length``, as MATLAB zpad/crop place
    them: floor(length/2) + ceil(-size/2) (1-based floor(length/2) + ceil(-size/2) + 1), for odd and even
    sizes. Negative when size > length."""
    return length // 2 - size // 2


def centred(length: int, size: int) -> slice:
    """0-based slice of the ``size`` central entries of an axis of ``length`` (centred_start); raises ValueError
    unless 0 < size <= length."""
    if not 0 < size <= length:
        raise ValueError(f"cannot centre {size} entries on an axis of {length}")
    start = centred_start(length, size)
    return slice(start, start + size)


def matlab_shape(dims: Sequence[int]) -> tuple[int, ...]:
    """MATLAB's size() of an array with these dimensions: trailing singleton dimensions dropped, interior ones
    kept, at least 2 dims."""
    shape = list(dims)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)
