"""The adjacent-frame window around a target frame (docs/method.md §1, PromptMR+ ``_get_ti_adj_idx_list``)."""


def adjacent_frames(t: int, nt: int, size: int = 5, cyclic: bool = True) -> list[int]:
    """Frame indices of the ``size``-frame window centred on frame ``t`` of ``nt``.

    Cyclic (cine): t-2 .. t+2 wrap modulo nt. Non-cyclic (mapping): indices are clamped, i.e. the end frames
    are repeated. When nt is too short for the window (nt < size), the window shrinks to t-nt//2 .. t+nt//2
    and is padded by repeating its first and last index, so the target always sits in the centre.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and positive, got {size}")
    if not 0 <= t < nt:
        raise ValueError(f"frame {t} is outside 0..{nt - 1}")
    half = size // 2
    reach = min(half, nt // 2)
    if cyclic:
        frames = [(t + offset) % nt for offset in range(-reach, reach + 1)]
    else:
        frames = [min(max(t + offset, 0), nt - 1) for offset in range(-reach, reach + 1)]
    pad = half - reach
    return [frames[0]] * pad + frames + [frames[-1]] * pad
