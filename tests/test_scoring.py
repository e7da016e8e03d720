"""challenge.scoring: skimage parity of the metrics, the organisers' per-year conventions, aggregation, CLI."""
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from challenge import scoring
from challenge.scoring import FileScore, nmse, psnr, score_file, score_trees, ssim, summarise_group
from challenge.rules import scoring_rules


def _structured(shape, seed=0, dtype=np.float64):
    """Smooth blobs, an edge and noise: what a cardiac magnitude image roughly looks like."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    image = np.exp(-((x - 0.2) ** 2 + y**2) * 6) + 0.5 * (x > 0.3) + 0.05 * rng.standard_normal(shape)
    return np.abs(image).astype(dtype)


def _volume(shape, seed=0):
    """MATLAB-order (nx, ny, ...) float32 array of structured images."""
    images = [_structured(shape[:2], seed + i, np.float32) for i in range(int(np.prod(shape[2:])))]
    return np.stack(images, axis=-1).reshape(shape)


# ---------------------------------------------------------------------------------------------------------
# Metrics against scikit-image.

@pytest.mark.parametrize("shape", [(7, 7), (9, 13), (32, 32), (64, 37), (41, 120)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_and_psnr_match_skimage(shape, dtype):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    pairs = [
        (rng.random(shape).astype(dtype), rng.random(shape).astype(dtype)),
        (_structured(shape, 1, dtype), _structured(shape, 2, dtype)),
        (_structured(shape, 3, dtype), (_structured(shape, 3, dtype) * 0.7 + 0.1).astype(dtype)),
    ]
    for reference, image in pairs:
        for data_range in (reference.max(), 1.0, 3.5):
            expected_ssim = structural_similarity(reference, image, data_range=data_range)
            expected_psnr = peak_signal_noise_ratio(reference, image, data_range=data_range)
            assert ssim(reference, image, data_range) == pytest.approx(expected_ssim, abs=1e-6)
            assert psnr(reference, image, data_range) == pytest.approx(expected_psnr, abs=1e-6)


def test_ssim_is_one_and_psnr_infinite_for_identical_images():
    image = _structured((20, 30))
    assert ssim(image, image, image.max()) == pytest.approx(1.0, abs=1e-12)
    assert psnr(image, image, image.max()) == math.inf


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="7x7"):
        ssim(np.ones((6, 10)), np.ones((6, 10)), 1.0)


def test_nmse_by_hand():
    reference = np.array([[3.0, 4.0], [0.0, 0.0]])      # |ref|^2 = 25
    image = np.array([[3.0, 2.0], [1.0, 0.0]])          # |ref - image|^2 = 4 + 1 = 5
    assert nmse(reference, image) == pytest.approx(0.2)
    assert nmse(image, reference) == pytest.approx(5 / 14)
    assert nmse(reference, reference) == 0.0


# ---------------------------------------------------------------------------------------------------------
# Per-file scores: normalisation, reference choice, invalid files.

def _normalise_max(image):
    return image / image.max()


def _normalise_zscore(image):
    return (image - image.mean()) / (image.std() + 1e-8)


def _normalise_percentile(image):
    return np.abs(image) / np.percentile(np.abs(image), 99.5)


def _expected(gt, recon, normalise, submission_is_reference):
    """Per-file means computed directly with skimage, the organisers' way."""
    values = []
    for index in np.ndindex(gt.shape[2:]):
        g = normalise(gt[(slice(None), slice(None), *index)])
        r = normalise(recon[(slice(None), slice(None), *index)])
        ref, other = (r, g) if submission_is_reference else (g, r)
        values.append((peak_signal_noise_ratio(ref, other, data_range=ref.max()),
                       structural_similarity(ref, other, data_range=ref.max()),
                       np.linalg.norm(ref - other) ** 2 / np.linalg.norm(ref) ** 2))
    return np.mean(values, axis=0)


@pytest.mark.parametrize("year, normalise", [(2023, _normalise_max), (2024, _normalise_zscore),
                                             (2025, _normalise_percentile)])
@pytest.mark.parametrize("shape", [(24, 19, 2, 3), (24, 19, 3)])
def test_score_file_follows_each_years_normalisation_and_reference(year, normalise, shape):
    gt = _volume(shape, seed=1)
    # A recon with a different intensity scale and structure, so normalisation and reference both matter.
    recon = (2.5 * _volume(shape, seed=7) + 0.3).astype(np.float32)
    swap = year in (2024, 2025) and len(shape) == 4
    expected = _expected(gt, recon, normalise, swap)
    score = score_file(gt, recon, year)
    assert score.valid and score.num_images == int(np.prod(shape[2:]))
    assert [score.psnr, score.ssim, score.nmse] == pytest.approx(list(expected), rel=1e-5)


def test_2024_quirk_submission_is_reference_for_4d_and_gt_for_3d():
    gt = _volume((24, 19, 1, 2), seed=2)
    recon = _volume((24, 19, 1, 2), seed=9)
    recon[:3, :3] = 40.0                  # a hot corner: only the submission's normalised max moves
    four_d = score_file(gt, recon, 2024)
    as_submission_reference = _expected(gt, recon, _normalise_zscore, True)
    as_gt_reference = _expected(gt, recon, _normalise_zscore, False)
    assert abs(as_submission_reference[0] - as_gt_reference[0]) > 1.0     # the case is really asymmetric
    assert four_d.psnr == pytest.approx(as_submission_reference[0], rel=1e-6)

    three_d = score_file(gt[:, :, 0], recon[:, :, 0], 2024)
    assert three_d.psnr == pytest.approx(as_gt_reference[0], rel=1e-6)
    assert scoring_rules(2024).submission_is_reference(4) and not scoring_rules(2024).submission_is_reference(3)


def test_2023_always_takes_the_ground_truth_as_reference():
    gt = _volume((24, 19, 1, 2), seed=2)
    recon = _volume((24, 19, 1, 2), seed=9)
    recon[:3, :3] = 40.0
    expected = _expected(gt, recon, _normalise_max, False)
    assert score_file(gt, recon, 2023).nmse == pytest.approx(expected[2], rel=1e-6)


def test_2025_test_phase_squeezes_before_comparing_shapes():
    gt = _volume((24, 19, 1, 3), seed=3)
    recon = gt[:, :, 0, :].copy()                     # (24, 19, 3): singleton slice axis dropped
    assert score_file(gt, recon, 2025, test_phase=True).valid
    assert score_file(gt, recon, 2025, test_phase=True).ssim == pytest.approx(1.0)
    assert "shape mismatch" in score_file(gt, recon, 2025).invalid_reason
    assert "shape mismatch" in score_file(gt, recon, 2024, test_phase=True).invalid_reason


@pytest.mark.parametrize("recon, reason", [
    (np.zeros((24, 19, 2), np.float32), "shape mismatch"),
    (np.full((24, 19, 2, 3), np.nan, np.float32), "non-finite"),
    (np.ones((24, 19, 2, 3), np.complex64), "complex"),
])
def test_invalid_reconstructions_are_reported_not_raised(recon, reason):
    score = score_file(_volume((24, 19, 2, 3)), recon, 2024)
    assert not score.valid and reason in score.invalid_reason and math.isnan(score.ssim)


def test_2024_test_phase_uses_nanmean_over_images():
    gt = _volume((24, 19, 1, 2), seed=4)
    recon = gt.copy()
    gt[:, :, 0, 1] = 0.0                  # constant GT image: z-score gives zeros -> NMSE 0/0 = NaN
    recon[:, :, 0, 1] = 0.0
    assert math.isnan(score_file(gt, recon, 2024).nmse)
    assert score_file(gt, recon, 2024, test_phase=True).nmse == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Aggregation: success rate and adjusted values.

def _four_files():
    """Two valid files and two invalid ones (missing, mis-shaped): w = 2/4."""
    return [FileScore(30.0, 0.9, 0.02, 6), FileScore(34.0, 0.8, 0.04, 6),
            FileScore(invalid_reason="missing reconstruction"), FileScore(invalid_reason="shape mismatch")]


def test_adjusted_values_2024_are_sums_over_all_files():
    group = summarise_group("Cine/Uniform4", _four_files(), scoring_rules(2024))
    assert (group.num_files, group.num_valid, group.success_rate) == (4, 2, 0.5)
    assert (group.psnr, group.ssim, group.nmse) == pytest.approx((32.0, 0.85, 0.03))
    assert (group.psnr_adj, group.ssim_adj, group.nmse_adj) == pytest.approx((64 / 4, 1.7 / 4, 0.06 / 4))


def test_adjusted_values_2025_scale_nmse_by_two_minus_w():
    group = summarise_group("Center001/UIH", _four_files(), scoring_rules(2025))
    assert (group.psnr_adj, group.ssim_adj) == pytest.approx((16.0, 0.425))
    assert group.nmse_adj == pytest.approx(0.03 * (2 - 0.5))


def test_2023_reports_the_mean_of_valid_files():
    group = summarise_group("cine_sax/AccFactor04", _four_files(), scoring_rules(2023))
    assert (group.psnr_adj, group.ssim_adj, group.nmse_adj) == pytest.approx((32.0, 0.85, 0.03))


def test_group_without_valid_files_has_no_adjusted_values():
    group = summarise_group("g", _four_files()[2:], scoring_rules(2024))
    assert group.num_valid == 0 and math.isnan(group.ssim_adj) and math.isnan(group.ssim)


# ---------------------------------------------------------------------------------------------------------
# Trees and CLI.

def _save(path: Path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"img4ranking": array})


_FILES_2024 = [
    "Cine/TestSet/Task1/P001/cine_sax_kus_Uniform4.mat",
    "Cine/TestSet/Task1/P002/cine_sax_kus_Uniform4.mat",
    "Cine/TestSet/Task1/P003/cine_sax_kus_Uniform4.mat",
    "Cine/TestSet/Task1/P004/cine_sax_kus_Uniform4.mat",
]


def _gt_tree(root: Path, files, shape=(24, 19, 2, 3)) -> dict[str, np.ndarray]:
    arrays = {f: _volume(shape, seed=i) for i, f in enumerate(files)}
    for f, array in arrays.items():
        _save(root / f, array)
    return arrays


def test_identical_trees_score_ssim_one_and_nmse_zero(tmp_path):
    _gt_tree(tmp_path / "gt", _FILES_2024)
    report = score_trees(tmp_path / "gt", tmp_path / "gt", 2024)
    assert [g.name for g in report.groups] == ["Cine/Uniform4"]
    assert report.overall.num_valid == 4 and report.overall.success_rate == 1.0
    assert report.overall.ssim == pytest.approx(1.0) and report.overall.nmse == pytest.approx(0.0, abs=1e-12)
    assert report.overall.ssim_adj == pytest.approx(1.0) and report.errors == []


def test_missing_and_misshaped_files_count_against_the_success_rate(tmp_path):
    arrays = _gt_tree(tmp_path / "gt", _FILES_2024)
    recon = tmp_path / "recon"
    _save(recon / _FILES_2024[0], arrays[_FILES_2024[0]])
    _save(recon / _FILES_2024[1], arrays[_FILES_2024[1]] * 0.5 + 0.01)
    _save(recon / _FILES_2024[2], arrays[_FILES_2024[2]][:, :, :1, :])          # (24, 19, 1, 3)
    report = score_trees(tmp_path / "gt", recon, 2024)

    reasons = {f.relative_path: f.score.invalid_reason for f in report.files}
    assert reasons[_FILES_2024[2]].startswith("shape mismatch")
    assert reasons[_FILES_2024[3]] == "missing reconstruction"
    group = report.groups[0]
    assert (group.num_files, group.num_valid, group.success_rate) == (4, 2, 0.5)
    valid = [f.score for f in report.files if f.score.valid]
    assert group.ssim_adj == pytest.approx(sum(s.ssim for s in valid) / 4)
    assert group.nmse == pytest.approx(np.mean([s.nmse for s in valid]))


def test_unreadable_file_and_missing_key_are_invalid(tmp_path):
    arrays = _gt_tree(tmp_path / "gt", _FILES_2024[:2])
    recon = tmp_path / "recon"
    (recon / _FILES_2024[0]).parent.mkdir(parents=True)
    (recon / _FILES_2024[0]).write_bytes(b"not a mat file at all")
    (recon / _FILES_2024[1]).parent.mkdir(parents=True)
    scipy.io.savemat(recon / _FILES_2024[1], {"recon": arrays[_FILES_2024[1]]})
    reasons = [f.score.invalid_reason for f in score_trees(tmp_path / "gt", recon, 2024).files]
    assert reasons[0].startswith("unreadable") and reasons[1] == "missing key 'img4ranking'"


def _write_v73(path: Path, array: np.ndarray) -> None:
    """A MATLAB v7.3 file (HDF5 with the 512-byte MAT header) holding img4ranking as h5py writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle["img4ranking"] = array
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + b"\0" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as handle:
        handle.write(header)


def test_v73_files_are_read_untransposed_except_in_the_2025_test_scorer(tmp_path):
    array = _volume((24, 19, 3), seed=5)
    _write_v73(tmp_path / "a.mat", array)
    assert scoring.load_ranking_array(tmp_path / "a.mat").shape == (24, 19, 3)
    assert scoring.load_ranking_array(tmp_path / "a.mat", transpose_hdf5=True).shape == (3, 19, 24)


_FILE_2025 = ("TaskR2/MultiCoil/Cine/ValidationSet/UnderSample_TaskR2/Center001/UIH_30T_umr780/P001/"
              "cine_sax_kus_Uniform8.mat")


def test_2025_validation_extra_submission_is_an_error(tmp_path):
    arrays = _gt_tree(tmp_path / "gt", [_FILE_2025])
    recon = tmp_path / "recon"
    _save(recon / _FILE_2025, arrays[_FILE_2025])
    extra = _FILE_2025.replace("cine_sax", "cine_lax")
    _save(recon / extra, arrays[_FILE_2025])
    report = score_trees(tmp_path / "gt", recon, 2025)
    assert report.extra_files == [extra] and len(report.errors) == 1 and extra in report.errors[0]
    assert scoring.main(["--gt", str(tmp_path / "gt"), "--recon", str(recon), "--year", "2025"]) == 1


def test_labels_put_a_file_in_each_of_its_patients_groups(tmp_path):
    _gt_tree(tmp_path / "gt", [_FILE_2025])
    labels = {"Center001/UIH_30T_umr780/P001": ["HCM", "Arrhythmia"]}
    report = score_trees(tmp_path / "gt", tmp_path / "gt", 2025, labels)
    assert [g.name for g in report.groups] == ["Arrhythmia", "HCM"]
    assert report.overall.num_files == 1 and report.mean_over_groups["ssim_adj"] == pytest.approx(1.0)


def test_cli_prints_a_table_and_writes_json_and_markdown(tmp_path, capsys):
    arrays = _gt_tree(tmp_path / "gt", _FILES_2024[:2])
    recon = tmp_path / "recon"
    _save(recon / _FILES_2024[0], arrays[_FILES_2024[0]] * 0.9)
    out_json, out_md = tmp_path / "out" / "scores.json", tmp_path / "out" / "scores.md"
    code = scoring.main(["--gt", str(tmp_path / "gt"), "--recon", str(recon), "--year", "2024",
                         "--json", str(out_json), "--markdown", str(out_md)])
    assert code == 1                # one file missing: reported, written, and not a pass
    captured = capsys.readouterr()
    assert "Cine/Uniform4" in captured.out and "missing reconstruction" in captured.out
    assert "1 of 2 files invalid or missing (w = 0.500)" in captured.err
    report = json.loads(out_json.read_text())
    assert report["overall"]["num_files"] == 2 and report["overall"]["num_valid"] == 1
    assert report["overall"]["success_rate"] == 0.5
    assert report["groups"][0]["ssim_adj"] == pytest.approx(report["files"][0]["ssim"] / 2)
    assert "| Cine/Uniform4 | 2 | 1 |" in out_md.read_text()


def test_cli_fails_cleanly_without_ground_truth(tmp_path, capsys):
    assert scoring.main(["--gt", str(tmp_path), "--recon", str(tmp_path), "--year", "2023"]) == 2
    assert "no ground-truth" in capsys.readouterr().err


def test_cli_exits_zero_only_when_every_file_is_valid(tmp_path, capsys):
    _gt_tree(tmp_path / "gt", _FILES_2024[:2])
    assert scoring.main(["--gt", str(tmp_path / "gt"), "--recon", str(tmp_path / "gt"), "--year", "2024"]) == 0
    assert "error" not in capsys.readouterr().err


def test_full_size_recon_against_cropped_gt_fails_and_says_why(tmp_path, capsys):
    # A new user's first mistake: test-phase (full-size) outputs scored against the run4Ranking crop.
    full = _gt_tree(tmp_path / "recon", _FILES_2024[:2], shape=(72, 38, 2, 3))
    for name, array in full.items():
        _save(tmp_path / "gt" / name, array[24:48, 10:29])          # round(72/3) x round(38/2)
    code = scoring.main(["--gt", str(tmp_path / "gt"), "--recon", str(tmp_path / "recon"), "--year", "2024"])
    err = capsys.readouterr().err
    assert code == 1
    assert "2 of 2 files invalid or missing (w = 0.000)" in err
    assert "shape mismatch" in err and "--crop" in err and "gt_full" in err
    # A plain mismatch gets no crop hint.
    assert "crop" not in score_file(np.ones((24, 19)), np.ones((30, 19)), 2024).invalid_reason
