"""Official undersampling masks: ACS placement, line patterns per frame, radial geometry, acceleration."""
import numpy as np
import pytest

from challenge.masks import effective_acceleration, make_mask, uniform_mask


def sampled_lines(mask):
    """(nt, ny, nx) Cartesian mask -> (nt, ny) ky lines; asserts the pattern is constant along nx."""
    assert np.all(mask == mask[..., :1])
    return mask[..., 0]


@pytest.mark.parametrize("ny, ncalib, first", [(246, 16, 115), (85, 20, 32), (85, 16, 34), (120, 24, 48)])
def test_acs_block_follows_the_zpad_centring_rule(ny, ncalib, first):
    lines = uniform_mask(ny, 8, R=ny, ncalib=ncalib)[:, 0]        # R = ny keeps only line 0 besides the ACS
    assert first == ny // 2 + int(np.ceil(-ncalib / 2))
    np.testing.assert_array_equal(np.flatnonzero(lines), [0, *range(first, first + ncalib)])


def test_uniform_lines_every_r_from_zero_same_for_all_frames():
    mask = make_mask("Uniform", 4, 100, 12, 8, 16, np.random.default_rng(0))
    lines = sampled_lines(mask)
    assert np.all(lines == lines[0])
    outside = np.ones(100, bool)
    outside[42:58] = False
    np.testing.assert_array_equal(np.flatnonzero(lines[0] & outside), [r for r in range(0, 100, 8) if not 42 <= r < 58])


def test_kt_uniform_lattice_shifts_one_line_per_frame():
    lines = sampled_lines(make_mask("ktUniform", 6, 120, 10, 8, 16, np.random.default_rng(0)))
    outside = np.ones(120, bool)
    outside[52:68] = False
    first = [np.flatnonzero(frame & outside) for frame in lines]
    shifts = [(b[0] - a[0]) % 8 for a, b in zip(first, first[1:])]
    assert set(shifts) == {1}
    assert all(np.all(np.diff(f[(f < 52) | (f >= 68)][:3]) == 8) for f in first)


def test_kt_gaussian_lines_per_frame_are_seeded_and_vary_over_frames():
    ny, R = 160, 8
    a = sampled_lines(make_mask("ktGaussian", 8, ny, 16, R, 16, np.random.default_rng(5)))
    b = sampled_lines(make_mask("ktGaussian", 8, ny, 16, R, 16, np.random.default_rng(5)))
    np.testing.assert_array_equal(a, b)
    counts = a.sum(axis=1)
    assert np.all(counts >= round(ny / R)) and np.all(counts <= round(ny / R) + 16)
    assert len({row.tobytes() for row in a}) > 1
    assert a[:, 72:88].all()                                          # ACS in every frame


def test_kt_radial_is_two_dimensional_rotates_per_frame_and_has_an_acs_square():
    mask = make_mask("ktRadial", 4, 96, 160, 8, 16, np.random.default_rng(0))
    assert not np.all(mask == mask[..., :1])                         # not a line pattern
    assert not np.array_equal(mask[0], mask[1])                      # golden-angle rotation
    assert mask[:, 40:56, 72:88].all()
    assert mask[:, 48, 80].all()                                     # spokes cross the centre


@pytest.mark.parametrize("pattern", ["ktUniform", "ktGaussian", "ktRadial"])
@pytest.mark.parametrize("R", [8, 16, 24])
def test_effective_acceleration_grows_with_r(pattern, R):
    masks = {r: make_mask(pattern, 12, 246, 256, r, 16, np.random.default_rng(1)) for r in (4, R)}
    assert effective_acceleration(masks[R]) > effective_acceleration(masks[4])
    # the ACS block is not counted in R, so the effective rate stays below the nominal one for Cartesian masks
    if pattern != "ktRadial":
        assert effective_acceleration(masks[R]) < R


def test_unknown_pattern_is_refused():
    with pytest.raises(ValueError, match="unknown mask pattern"):
        make_mask("Spiral", 2, 10, 10, 4, 4, np.random.default_rng(0))
