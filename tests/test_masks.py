"""Official undersampling masks: ACS placement, line patterns per frame, radial geometry, acceleration."""
import numpy as np
import pytest

from challenge.masks import kt_gaussian_mask_from_seed, kt_radial_mask, make_mask, uniform_mask


def acceleration(mask):
    """Samples on the grid over samples taken (the toolbox's numel(mask)/sum(mask(:)))."""
    return mask.size / np.count_nonzero(mask)


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
    assert acceleration(masks[R]) > acceleration(masks[4])
    # the ACS block is not counted in R, so the effective rate stays below the nominal one for Cartesian masks
    if pattern != "ktRadial":
        assert acceleration(masks[R]) < R


def test_unknown_pattern_is_refused():
    with pytest.raises(ValueError, match="unknown mask pattern"):
        make_mask("Spiral", 2, 10, 10, 4, 4, np.random.default_rng(0))


def test_kt_uniform_outside_acs_samples_exactly_every_r_th_line():
    lines = sampled_lines(make_mask("ktUniform", 12, 246, 8, 8, 20, np.random.default_rng(0)))
    outside = np.ones(246, bool)
    outside[113:133] = False
    for t, frame in enumerate(lines):
        np.testing.assert_array_equal(np.flatnonzero(frame & outside),
                                      [k for k in range(246) if (k - t) % 8 == 0 and outside[k]])


def test_kt_gaussian_draws_round_ny_over_r_distinct_lines_per_frame():
    ny, R = 101, 4                                                    # round(25.25) = 25 lines, many repeats
    lines = sampled_lines(kt_gaussian_mask_from_seed(10, ny, 4, R, ncalib=1, seed=17))
    acs = np.zeros(ny, bool)
    acs[50] = True
    counts = (lines & ~acs).sum(axis=1) + (lines & acs).sum(axis=1)
    # ktdup moves repeats to free lines of the same frame, so each frame keeps 25 lines (+1 if ACS was missed)
    assert np.all((counts == 25) | (counts == 26))
    np.testing.assert_array_equal(lines, sampled_lines(kt_gaussian_mask_from_seed(10, ny, 4, R, 1, seed=17)))
    assert not np.array_equal(lines, sampled_lines(kt_gaussian_mask_from_seed(10, ny, 4, R, 1, seed=18)))


def test_kt_gaussian_prefers_the_centre_of_k_space():
    lines = sampled_lines(kt_gaussian_mask_from_seed(40, 200, 2, 8, ncalib=1, seed=3))
    centre, edge = lines[:, 80:120].mean(), np.concatenate([lines[:, :40], lines[:, 160:]], axis=1).mean()
    assert centre > 2 * edge


def test_kt_radial_first_frame_contains_the_unrotated_spoke():
    # a = max(nx, ny) = 512: the spoke is MATLAB row round(512/2) = 256 (1-based) of the square; at 0 degrees it
    # is the nx index 255 over every ky, and the 180-degree copy of the set lands one column further
    mask = kt_radial_mask(2, 246, 512, 8, 16)
    assert mask[0][:, 255].all() and mask[0][:, 256].all()
    assert not mask[1][:, 255].all()                                 # 137.5 degrees later: no such column


def brute_force_radial(nt, ny, nx, R, ncalib):
    """Reference: rotate every pixel of the max(nx, ny) square back onto the spoke row (imrotate, nearest)."""
    spokes = int(np.floor(180 / (0.6 * R)))
    side = max(nx, ny)
    centre, line_row = (side + 1) / 2, np.floor(side / 2 + 0.5)
    rows = np.arange(side)[:, None] + 1.0 - centre
    cols = np.arange(side)[None, :] + 1.0 - centre
    x0, y0 = side // 2 - nx // 2, side // 2 - ny // 2
    out = np.zeros((nt, ny, nx), bool)
    for t in range(nt):
        image = np.zeros((side, side), bool)
        for k in range(spokes + 1):
            angle = np.deg2rad(137.5 * t + k * 180 / spokes)
            source_row = np.floor(cols * np.sin(angle) + rows * np.cos(angle) + centre + 0.5)
            source_col = np.floor(cols * np.cos(angle) - rows * np.sin(angle) + centre + 0.5)
            image |= (source_row == line_row) & (source_col >= 1) & (source_col <= side)
        out[t] = image[x0:x0 + nx, y0:y0 + ny].T
    out[:, ny // 2 - ncalib // 2:][:, :ncalib, nx // 2 - ncalib // 2:][:, :, :ncalib] = True
    return out


@pytest.mark.parametrize("ny, nx, R", [(31, 40, 4), (40, 31, 8), (64, 64, 16), (37, 37, 24)])
def test_kt_radial_matches_a_whole_image_rotation(ny, nx, R):
    np.testing.assert_array_equal(kt_radial_mask(3, ny, nx, R, 6), brute_force_radial(3, ny, nx, R, 6))


@pytest.mark.parametrize("pattern, low, high", [("Uniform", 0.9, 1.05), ("ktUniform", 0.95, 1.05),
                                                ("ktGaussian", 0.95, 1.2)])
@pytest.mark.parametrize("R", [8, 16, 24])
def test_cartesian_rate_outside_the_acs_is_close_to_r(pattern, low, high, R):
    # measured (246 x 12 frames, 20 ACS): Uniform 7.8/15.1/22.6, ktUniform 8.0/16.0/23.8, ktGaussian 8.4/17.8/26.1
    mask = make_mask(pattern, 12, 246, 4, R, 20, np.random.default_rng(3))
    outside = np.ones(246, bool)
    outside[113:133] = False
    assert low * R <= acceleration(mask[:, outside]) <= high * R


@pytest.mark.parametrize("R", [8, 16, 24])
def test_kt_radial_rate_is_close_to_r(R):
    # measured at 246 x 512 with a 16 x 16 ACS square: 9.1, 17.9, 25.9 (the 0.6 factor offsets the short spokes)
    assert 0.9 * R <= acceleration(kt_radial_mask(4, 246, 512, R, 16)) <= 1.2 * R
