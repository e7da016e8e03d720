"""Year-specific path, key, shape and scoring rules (challenge/rules/)."""
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from challenge import rules
from challenge.rules import (
    CINE_LIKE, MAPPING_LIKE, SINGLE_FRAME, PathRuleError, classify, expected_output_shape, frame_class, parse_job,
    parse_output_path, run4ranking, scoring_rules, to_output_array,
)

ROOT = Path("/data/input")


def job_at(relative: str, root: Path = ROOT) -> rules.Job:
    job = parse_job(root, root / relative)
    assert job is not None, classify(root, root / relative)
    return job


def blank(shape) -> np.ndarray:
    """A read-only zero image of any size without allocating it."""
    return np.broadcast_to(np.zeros((1, 1, 1, 1), np.float32), shape)


# ------------------------------------------------------------------------------------------- paths, 2023

def test_2023_test_layout():
    job = job_at("MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat")
    assert (job.year, job.split, job.modality, job.task, job.base) == (2023, "TestSet", "Cine", "Task1", "cine_sax")
    assert (job.pattern, job.acceleration, job.patient) == ("Uniform", 4, "P001")
    assert (job.kspace_key, job.mask_key) == ("kspace_sub04", "mask04")
    assert job.mask_path == ROOT / "MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax_mask.mat"
    assert job.output_relative == PurePosixPath("MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat")
    assert job.relative_path == PurePosixPath("MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat")
    assert rules.acs_lines(job) == 24 and not rules.is_radial(job) and rules.is_cyclic(job)


def test_2023_validation_mapping_with_root_at_patient_folder():
    root = Path("/data/MultiCoil/Mapping/ValidationSet/AccFactor10/P002")
    job = job_at("T2map.mat", root)
    assert (job.year, job.split, job.modality, job.task, job.acceleration) == (
        2023, "ValidationSet", "Mapping", "Task2", 10)
    assert (job.kspace_key, job.mask_key, job.mask_path) == ("kspace_sub10", "mask10", root / "T2map_mask.mat")
    assert job.output_relative == PurePosixPath("MultiCoil/Mapping/ValidationSet/AccFactor10/P002/T2map.mat")
    assert job.relative_path == PurePosixPath("T2map.mat")
    assert not rules.is_cyclic(job)


def test_2023_root_above_multicoil():
    job = job_at("ChallengeData/MultiCoil/Cine/TestSet/AccFactor08/P120/cine_lax.mat")
    assert job.output_relative == PurePosixPath("MultiCoil/Cine/TestSet/AccFactor08/P120/cine_lax.mat")


# ------------------------------------------------------------------------------------------- paths, 2024

def test_2024_test_root_at_modality_folder():
    job = job_at("Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat")
    assert (job.year, job.split, job.modality, job.task) == (2024, "TestSet", "Cine", "Task1")
    assert (job.base, job.pattern, job.acceleration, job.patient) == ("cine_sax", "Uniform", 8, "P001")
    assert (job.kspace_key, job.mask_key) == ("kus", "mask")
    assert job.mask_path == ROOT / "Cine/TestSet/Mask_Task1/P001/cine_sax_mask_Uniform8.mat"
    assert job.output_relative == PurePosixPath("Cine/TestSet/Task1/P001/cine_sax_kus_Uniform8.mat")
    assert (job.center, job.vendor) == ("", "")
    assert rules.acs_lines(job) == 16 and rules.is_cyclic(job) and not rules.is_radial(job)


def test_2024_task2_radial_mapping():
    job = job_at("Mapping/TestSet/UnderSample_Task2/P003/T1map_kus_ktRadial12.mat")
    assert (job.task, job.pattern, job.acceleration) == ("Task2", "ktRadial", 12)
    assert rules.is_radial(job) and not rules.is_cyclic(job)
    assert job.mask_path == ROOT / "Mapping/TestSet/Mask_Task2/P003/T1map_mask_ktRadial12.mat"
    assert job.output_relative == PurePosixPath("Mapping/TestSet/Task2/P003/T1map_kus_ktRadial12.mat")


def test_2024_validation_root_above_multicoil():
    job = job_at("MultiCoil/Aorta/ValidationSet/UnderSample_Task2/P010/aorta_sag_kus_ktGaussian20.mat",
                 Path("/data/ChallengeData"))
    assert (job.year, job.split, job.modality, job.pattern, job.acceleration) == (
        2024, "ValidationSet", "Aorta", "ktGaussian", 20)
    assert job.output_relative == PurePosixPath("Aorta/ValidationSet/Task2/P010/aorta_sag_kus_ktGaussian20.mat")
    assert job.mask_path == Path("/data/ChallengeData/MultiCoil/Aorta/ValidationSet/Mask_Task2/P010/"
                                 "aorta_sag_mask_ktGaussian20.mat")


def test_2024_root_at_patient_folder_gives_the_same_output():
    root = Path("/data/input/BlackBlood/TestSet/UnderSample_Task1/P007")
    job = job_at("blackblood_kus_Uniform10.mat", root)
    assert job.output_relative == PurePosixPath("BlackBlood/TestSet/Task1/P007/blackblood_kus_Uniform10.mat")
    assert job.relative_path == PurePosixPath("blackblood_kus_Uniform10.mat")


def test_modality_from_base_name_when_no_modality_folder():
    job = job_at("UnderSample_Task1/P001/flow2d_kus_Uniform4.mat")
    assert (job.modality, job.split) == ("Flow2d", "TestSet")
    assert job.output_relative == PurePosixPath("Flow2d/TestSet/Task1/P001/flow2d_kus_Uniform4.mat")


@pytest.mark.parametrize("base, modality", [
    ("cine_lax_3ch", "Cine"), ("aorta_tra", "Aorta"), ("T1map", "Mapping"), ("T2map", "Mapping"),
    ("T2smap", "Mapping"), ("T1mappost", "Mapping"), ("tagging", "Tagging"), ("flow2d", "Flow2d"),
    ("blackblood", "BlackBlood"), ("lge_lax_4ch", "LGE"), ("perfusion", "Perfusion"), ("T1rho", "T1rho"),
    ("T1w", "T1w"), ("T2w", "T2w"), ("unknown", ""),
])
def test_modality_of_base(base, modality):
    assert rules.modality_of_base(base) == modality


# ------------------------------------------------------------------------------------------- paths, 2025

def test_2025_test_root_at_task_folder():
    root = Path("/input/TaskR1")
    relative = ("MultiCoil/Cine/TestSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P001/"
                "cine_lax_3ch_kus_ktGaussian16.mat")
    job = job_at(relative, root)
    assert (job.year, job.split, job.modality, job.task) == (2025, "TestSet", "Cine", "TaskR1")
    assert (job.base, job.pattern, job.acceleration) == ("cine_lax_3ch", "ktGaussian", 16)
    assert (job.center, job.vendor, job.patient) == ("Center001", "UIH_30T_umr780", "P001")
    assert job.mask_path == root / ("MultiCoil/Cine/TestSet/Mask_TaskR1/Center001/UIH_30T_umr780/P001/"
                                    "cine_lax_3ch_mask_ktGaussian16.mat")
    assert job.output_relative == PurePosixPath(
        "TaskR1/MultiCoil/Cine/TestSet/TaskR1/Center001/UIH_30T_umr780/P001/cine_lax_3ch_kus_ktGaussian16.mat")
    assert rules.acs_lines(job) == 20


@pytest.mark.parametrize("task", ["TaskR2", "TaskS1", "TaskS2"])
def test_2025_validation_root_above_tasks(task):
    root = Path("/data/ChallengeData_ValSet")
    relative = (f"{task}/MultiCoil/LGE/ValidationSet/UnderSample_{task}/Center005/UIH_15T_umr670/P003/"
                "lge_sax_kus_Uniform24.mat")
    job = job_at(relative, root)
    assert (job.year, job.split, job.modality, job.task, job.acceleration) == (2025, "ValidationSet", "LGE", task, 24)
    assert job.output_relative == PurePosixPath(relative)       # validation keeps UnderSample_{Task}
    assert job.mask_path == root / relative.replace(f"UnderSample_{task}", f"Mask_{task}").replace("_kus_", "_mask_")
    assert not rules.is_cyclic(job)


def test_volume_meta():
    pytest.importorskip("torch")
    job = job_at("TaskR1/MultiCoil/Cine/TestSet/UnderSample_TaskR1/C/V/P001/cine_sax_kus_ktRadial8.mat")
    meta = rules.volume_meta(job)
    assert (meta.num_acs, meta.radial, meta.cyclic, meta.name) == (20, True, True, str(job.relative_path))


# ------------------------------------------------------------------------------------------- skipping

@pytest.mark.parametrize("relative, reason_part", [
    ("Cine/TestSet/UnderSample_Task1/P001/._cine_sax_kus_Uniform8.mat", "AppleDouble"),
    ("Cine/TestSet/Mask_Task1/P001/cine_sax_mask_Uniform8.mat", "mask"),
    ("Cine/TestSet/UnderSample_Task1/P001/cine_sax_mask_Uniform8.mat", "mask"),
    ("TaskR1/MultiCoil/Cine/TestSet/UnderSample_TaskR1/C/V/P001/cine_sax_info.csv", "not a .mat"),
    ("MultiCoil/Mapping/TestSet/AccFactor04/P001/T1map.csv", "not a .mat"),
    ("MultiCoil/Mapping/TestSet/AccFactor04/P001/T1map_mask.mat", "mask"),
    ("Cine/TestSet/Mask_Task1/P001/cine_sax_kus_Uniform8.mat", "Mask_Task1"),
    ("MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat", "FullSample"),
    ("SingleCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat", "single-coil"),
    ("Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Spiral8.mat", "not an undersampled"),
    ("Cine/TestSet/P001/cine_sax_kus_Uniform8.mat", "UnderSample"),
    ("MultiCoil/Cine/TestSet/P001/cine_sax.mat", "AccFactor"),
    ("notes.txt", "not a .mat"),
])
def test_skipped_files(relative, reason_part):
    assert parse_job(ROOT, ROOT / relative) is None
    reason = classify(ROOT, ROOT / relative)
    assert isinstance(reason, str) and reason_part in reason


def test_path_outside_root_is_an_error():
    with pytest.raises(PathRuleError, match="not under the input root"):
        classify(ROOT, Path("/elsewhere/cine_sax_kus_Uniform8.mat"))


# ------------------------------------------------------------------------------------------- rounding, crop

def test_worked_example_2024_cine_sax_crop():
    job = job_at("Cine/ValidationSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat")
    out = to_output_array(job, blank((12, 11, 246, 512)), True, crop=True)
    assert out.shape == (171, 123, 2, 3) and out.dtype == np.float32
    assert expected_output_shape(job, (12, 11, 10, 246, 512), True, True) == (171, 123, 2, 3)


def test_run4ranking_selects_central_slices_first_frames_and_centre():
    nt, nz, ny, nx = 4, 5, 7, 9
    image = np.arange(nt * nz * ny * nx, dtype=np.float32).reshape(nt, nz, ny, nx)
    out = run4ranking(2024, "cine_sax", image, True)
    # nz=5: round(2.5)=3 -> 1-based 2:3; ny=7 -> 4 rows from 1; nx=9 -> 3 columns from 3.
    expected = image[0:3, 1:3, 1:5, 3:6].transpose(3, 2, 1, 0)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (3, 4, 2, 3)


def test_full_size_output_is_matlab_order():
    job = job_at("Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat")
    image = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    out = to_output_array(job, image)
    assert out.shape == (7, 5, 3, 2)
    assert out[6, 4, 2, 1] == image[1, 2, 4, 6] and out[1, 0, 2, 0] == image[0, 2, 0, 1]


# ------------------------------------------------------------------------------------------- singleton rules

JOB_2024_CINE = "Cine/TestSet/UnderSample_Task1/P001/cine_lax_kus_Uniform4.mat"
JOB_2024_BB = "BlackBlood/TestSet/UnderSample_Task1/P001/blackblood_kus_Uniform4.mat"
JOB_2024_T1 = "Mapping/TestSet/UnderSample_Task2/P001/T1map_kus_ktUniform8.mat"
JOB_2025 = "TaskR1/MultiCoil/{m}/TestSet/UnderSample_TaskR1/C/V/P001/{b}_kus_Uniform8.mat"
JOB_2023_CINE = "MultiCoil/Cine/TestSet/AccFactor04/P001/cine_lax.mat"
JOB_2023_T1 = "MultiCoil/Mapping/TestSet/AccFactor04/P001/T1map.mat"

SHAPE_CASES = [
    # relative path, image (nt, nz, ny, nx), has_time_axis, crop, expected MATLAB shape
    (JOB_2024_CINE, (12, 1, 246, 512), True, False, (512, 246, 1, 12)),      # single slice keeps its axis
    (JOB_2024_CINE, (12, 1, 246, 512), True, True, (171, 123, 1, 3)),
    (JOB_2024_CINE, (12, 3, 246, 512), True, True, (171, 123, 2, 3)),
    (JOB_2024_BB, (1, 9, 204, 448), False, False, (448, 204, 9)),            # 4-D file: no time axis
    (JOB_2024_BB, (1, 1, 204, 448), False, False, (448, 204)),
    (JOB_2024_BB, (1, 9, 204, 448), False, True, (149, 102, 2)),
    (JOB_2024_T1, (9, 1, 144, 512), True, True, (171, 72, 1, 9)),            # mapping: all weightings
    (JOB_2024_T1, (2, 6, 144, 512), True, True, (171, 72, 2, 2)),            # nt < 3 mapping
    (JOB_2025.format(m="Mapping", b="T2map"), (3, 10, 85, 383), True, True, (128, 43, 2, 3)),
    (JOB_2025.format(m="Mapping", b="T1mappost"), (9, 1, 85, 383), True, True, (128, 43, 1, 9)),
    (JOB_2025.format(m="T1rho", b="T1rho"), (16, 4, 120, 400), True, True, (133, 60, 2, 16)),
    (JOB_2025.format(m="LGE", b="lge_sax"), (2, 12, 120, 400), True, True, (133, 60, 2, 2)),
    (JOB_2025.format(m="LGE", b="lge_lax_2ch"), (2, 1, 120, 400), True, True, (133, 60, 1, 2)),
    (JOB_2025.format(m="Flow2d", b="flow2d"), (2, 20, 120, 400), True, True, (133, 60, 2, 2)),
    (JOB_2025.format(m="Perfusion", b="perfusion"), (35, 3, 120, 400), True, True, (133, 60, 2, 3)),
    (JOB_2025.format(m="T1w", b="T1w"), (1, 10, 161, 400), False, True, (133, 81, 2)),
    (JOB_2025.format(m="T2w", b="T2w"), (1, 1, 161, 400), False, True, (133, 81)),
    (JOB_2025.format(m="Cine", b="cine_sax"), (1, 10, 120, 400), True, True, (133, 60, 2)),
    (JOB_2025.format(m="T2w", b="T2w"), (1, 10, 161, 400), False, False, (400, 161, 10)),
    (JOB_2023_CINE, (25, 3, 168, 448), True, True, (149, 84, 2, 3)),
    (JOB_2023_T1, (9, 6, 144, 512), True, True, (171, 72, 2, 9)),
    (JOB_2023_T1, (9, 6, 144, 512), True, False, (512, 144, 6, 9)),
]


@pytest.mark.parametrize("relative, dims, has_time_axis, crop, expected", SHAPE_CASES)
def test_output_shapes_and_expected_shape_agree(relative, dims, has_time_axis, crop, expected):
    job = job_at(relative)
    out = to_output_array(job, blank(dims), has_time_axis, crop=crop)
    assert out.shape == expected
    nt, nz, ny, nx = dims
    kspace_shape = (nt, nz, 10, ny, nx) if has_time_axis else (nz, 10, ny, nx)
    assert expected_output_shape(job, kspace_shape, has_time_axis, crop) == expected
    assert expected_output_shape(job, (nt, nz, 10, ny, nx), has_time_axis, crop) == expected


def test_output_array_rejects_bad_input():
    job = job_at(JOB_2024_CINE)
    with pytest.raises(ValueError, match="nt = 1"):
        to_output_array(job, blank((2, 1, 8, 8)), False)
    with pytest.raises(ValueError, match="cine_lax_kus_Uniform4"):
        to_output_array(job, np.zeros((1, 8, 8), np.float32))
    with pytest.raises(TypeError, match="magnitude"):
        to_output_array(job, np.zeros((1, 1, 8, 8), np.complex64))


@pytest.mark.parametrize("year, base, expected", [
    (2023, "cine_sax", CINE_LIKE), (2023, "T2map", MAPPING_LIKE),
    (2024, "blackblood", SINGLE_FRAME), (2024, "T1map", MAPPING_LIKE), (2024, "flow2d", CINE_LIKE),
    (2024, "tagging", CINE_LIKE),
    (2025, "blackblood", SINGLE_FRAME), (2025, "T1w", SINGLE_FRAME), (2025, "T2w", SINGLE_FRAME),
    (2025, "T1map", MAPPING_LIKE), (2025, "T2smap", MAPPING_LIKE), (2025, "T1mappost", MAPPING_LIKE),
    (2025, "T1rho", MAPPING_LIKE), (2025, "lge_lax_3ch", CINE_LIKE), (2025, "perfusion", CINE_LIKE),
    (2025, "cine_rvot", CINE_LIKE),
])
def test_frame_class(year, base, expected):
    assert frame_class(year, base) == expected


# ------------------------------------------------------------------------------------------- scoring rules

def test_normalisation_per_year():
    rng = np.random.default_rng(0)
    image = rng.random((16, 12)) * 5 + 1
    assert scoring_rules(2023).normalise(image).max() == pytest.approx(1.0)
    z = scoring_rules(2024).normalise(image)
    assert z.mean() == pytest.approx(0.0, abs=1e-9) and z.std() == pytest.approx(1.0, rel=1e-6)
    p = scoring_rules(2025).normalise(-image)
    assert p.min() > 0 and np.percentile(p, 99.5) == pytest.approx(1.0)


def test_reference_swap_and_adjustments():
    assert [scoring_rules(2023).submission_is_reference(n) for n in (3, 4)] == [False, False]
    for year in (2024, 2025):
        assert scoring_rules(year).submission_is_reference(4)
        assert not scoring_rules(year).submission_is_reference(3)
    assert scoring_rules(2023).nmse_adjustment == rules.MEAN_OF_VALID
    assert scoring_rules(2024).nmse_adjustment == rules.SUM_OVER_TOTAL
    assert scoring_rules(2025).nmse_adjustment == rules.MEAN_TIMES_2_MINUS_W
    assert scoring_rules(2025).adjustment == rules.SUM_OVER_TOTAL
    with pytest.raises(ValueError):
        scoring_rules(2022)


@pytest.mark.parametrize("relative, group", [
    ("MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat", "cine_sax/AccFactor04"),
    ("Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat", "Cine/Uniform8"),
    ("Mapping/TestSet/UnderSample_Task2/P003/T1map_kus_ktRadial12.mat", "Mapping/ktRadial"),
    ("TaskR1/MultiCoil/Cine/TestSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P001/cine_sax_kus_Uniform8.mat",
     "Center001/UIH_30T_umr780"),
    ("TaskR2/MultiCoil/LGE/ValidationSet/UnderSample_TaskR2/Center005/UIH/P003/lge_sax_kus_ktGaussian16.mat", "TaskR2"),
])
def test_output_paths_round_trip_and_group(relative, group):
    job = job_at(relative)
    scored = parse_output_path(job.year, job.output_relative)
    assert (scored.task, scored.modality, scored.base, scored.pattern, scored.acceleration) == (
        job.task, job.modality, job.base, job.pattern, job.acceleration)
    assert (scored.center, scored.vendor, scored.patient) == (job.center, job.vendor, job.patient)
    assert scoring_rules(job.year).group_of(scored) == group


def test_parse_ground_truth_style_paths():
    gt = parse_output_path(
        2025, "TaskR1/MultiCoil/Cine/TestSet/FullSample_TaskR1/Center002/Siemens_30T_CIMA.X/P009/cine_sax.mat")
    assert (gt.task, gt.center, gt.vendor, gt.base, gt.pattern, gt.patient) == (
        "TaskR1", "Center002", "Siemens_30T_CIMA.X", "cine_sax", "", "P009")
    legacy = parse_output_path(2024, "Aorta/TestSet/aorta_tra_kus_ktGaussian8.mat")   # no Task folder
    assert (legacy.task, legacy.modality) == ("Task2", "Aorta")
    with pytest.raises(PathRuleError):
        parse_output_path(2023, "MultiCoil/Cine/TestSet/P001/cine_sax.mat")
    with pytest.raises(PathRuleError):
        parse_output_path(2025, "P001/cine_sax_kus_Uniform8.mat")
