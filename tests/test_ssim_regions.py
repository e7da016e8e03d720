"""The scorer's SSIM split into object and background (benchmarks/ssim_regions.py)."""
import numpy as np
import pytest
import scipy.io

from benchmarks import ssim_regions
from challenge import scoring


def _phantom(rng: np.random.Generator, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """A disc on a noisy background, (48, 40) float64, and the disc's mask."""
    y, x = np.mgrid[:48, :40]
    disc = (y - 24) ** 2 + (x - 20) ** 2 < 12 ** 2
    return disc * 1.0 + noise * np.abs(rng.standard_normal(disc.shape)), disc


def test_an_exact_copy_scores_one_everywhere_and_keeps_all_background():
    truth, _ = _phantom(np.random.default_rng(0))
    regions = ssim_regions.image_regions(truth, truth.copy(), truth, 0.1)
    assert regions.whole == regions.object == regions.background == pytest.approx(1.0)
    assert regions.background_kept == pytest.approx(1.0)


def test_new_noise_of_the_same_level_costs_background_ssim_only_and_the_parts_make_the_whole():
    rng = np.random.default_rng(1)
    truth, disc = _phantom(rng)
    other = np.where(disc, truth, 0.02 * np.abs(rng.standard_normal(truth.shape)))   # the object kept exactly
    regions = ssim_regions.image_regions(truth, other, truth, 0.1)
    assert regions.whole == pytest.approx(scoring.ssim(truth, other, truth.max()))
    assert regions.background < 0.9 < 0.99 < regions.object
    assert regions.background_kept == pytest.approx(1.0, abs=0.15)
    fraction = regions.background_fraction
    assert regions.whole == pytest.approx(fraction * regions.background + (1 - fraction) * regions.object)
    flat = ssim_regions.image_regions(truth, np.where(disc, truth, 0.0), truth, 0.1)
    assert flat.background_kept == 0.0


def test_the_reference_swap_keeps_the_ground_truth_as_the_region_mask():
    """2024's 4-D arrays take the submission as reference; the object is still the ground truth's."""
    rng = np.random.default_rng(2)
    truth, disc = _phantom(rng)
    other = np.where(disc, 0.9 * truth, truth)
    gt4, recon4 = truth[:, :, None, None], other[:, :, None, None]
    (reference, compared, mask_image), = scoring.compared_images(gt4, recon4, 2024)
    assert np.array_equal(mask_image, rules_normalised(truth, 2024))
    assert np.array_equal(reference, rules_normalised(other, 2024))
    file_score = ssim_regions.file_regions(gt4, recon4, 2024, 0.1)
    assert file_score.whole == pytest.approx(scoring.score_file(gt4, recon4, 2024).ssim)
    assert file_score.background_fraction == pytest.approx(1 - disc[3:-3, 3:-3].mean(), abs=0.05)


def rules_normalised(image: np.ndarray, year: int) -> np.ndarray:
    from challenge import rules
    return rules.scoring_rules(year).normalise(image)


def test_cli_scores_trees_and_names_a_missing_reconstruction(tmp_path, capsys):
    rng = np.random.default_rng(3)
    truth, disc = _phantom(rng)
    for name, image in (("gt", truth), ("same", truth), ("noisier", truth + 0.05 * rng.standard_normal(truth.shape))):
        (tmp_path / name / "P001").mkdir(parents=True)
        scipy.io.savemat(tmp_path / name / "P001" / "cine_sax.mat",
                         {"img4ranking": np.abs(image)[:, :, None, None].astype(np.float32)})
    out = tmp_path / "regions.md"
    assert ssim_regions.main(["--gt", str(tmp_path / "gt"), "--year", "2023", "--recon", f"same={tmp_path / 'same'}",
                              f"noisier={tmp_path / 'noisier'}", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| P001/cine_sax.mat | 1.0000 / 1.0000 / 1.0000, 1.00 |" in text
    assert text in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert ssim_regions.main(["--gt", str(tmp_path / "gt"), "--year", "2023",
                              "--recon", f"none={tmp_path / 'empty'}"]) == 2
    assert "no reconstruction for ground truth" in capsys.readouterr().err
