"""Walking input roots (challenge/discovery.py)."""
import os
from pathlib import Path, PurePosixPath

import pytest

from challenge.discovery import InputRootError, discover


def touch(root: Path, *relatives: str) -> None:
    for relative in relatives:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


TREE_2024 = (
    "Cine/TestSet/UnderSample_Task1/P002/cine_sax_kus_Uniform8.mat",
    "Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform4.mat",
    "Cine/TestSet/UnderSample_Task1/P001/cine_lax_kus_Uniform10.mat",
    "Cine/TestSet/UnderSample_Task1/P001/._cine_lax_kus_Uniform10.mat",
    "Cine/TestSet/Mask_Task1/P001/cine_sax_mask_Uniform4.mat",
    "Cine/TestSet/UnderSample_Task2/P001/cine_sax_kus_ktRadial24.mat",
    "Cine/TestSet/Mask_Task2/P001/cine_sax_mask_ktRadial24.mat",
    "Mapping/TestSet/UnderSample_Task1/P001/T1map_kus_Uniform8.mat",
    "Mapping/TestSet/UnderSample_Task1/P001/notes.csv",
)


def test_discovers_jobs_sorted_and_reports_skips(tmp_path):
    touch(tmp_path, *TREE_2024)
    (tmp_path / "Aorta" / "TestSet").mkdir(parents=True)            # empty folders are fine
    found = discover(tmp_path)
    assert [str(job.relative_path) for job in found.jobs] == sorted([
        "Cine/TestSet/UnderSample_Task1/P002/cine_sax_kus_Uniform8.mat",
        "Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform4.mat",
        "Cine/TestSet/UnderSample_Task1/P001/cine_lax_kus_Uniform10.mat",
        "Cine/TestSet/UnderSample_Task2/P001/cine_sax_kus_ktRadial24.mat",
        "Mapping/TestSet/UnderSample_Task1/P001/T1map_kus_Uniform8.mat",
    ])
    assert all(job.year == 2024 for job in found.jobs)
    sax = next(job for job in found.jobs if job.relative_path.name == "cine_sax_kus_Uniform4.mat")
    assert sax.input_path == tmp_path / sax.relative_path
    assert sax.mask_path == tmp_path / "Cine/TestSet/Mask_Task1/P001/cine_sax_mask_Uniform4.mat"
    assert sax.mask_path.exists()
    skipped = {str(path.relative_to(tmp_path)): reason for path, reason in found.skipped}
    assert set(skipped) == {
        "Cine/TestSet/UnderSample_Task1/P001/._cine_lax_kus_Uniform10.mat",
        "Cine/TestSet/Mask_Task1/P001/cine_sax_mask_Uniform4.mat",
        "Cine/TestSet/Mask_Task2/P001/cine_sax_mask_ktRadial24.mat",
        "Mapping/TestSet/UnderSample_Task1/P001/notes.csv",
    }
    assert found.errors == []
    assert discover(tmp_path).jobs == found.jobs                      # deterministic


def test_2025_challenge_root_with_all_tasks(tmp_path):
    files = [f"{task}/MultiCoil/Cine/ValidationSet/UnderSample_{task}/Center001/UIH_30T_umr780/P001/"
             "cine_sax_kus_Uniform16.mat"
             for task in ("TaskR1", "TaskR2", "TaskS1", "TaskS2")]
    touch(tmp_path, *files, "TaskR1/MultiCoil/Cine/ValidationSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P001/"
                            "cine_sax_info.csv")
    found = discover(tmp_path)
    assert [job.task for job in found.jobs] == ["TaskR1", "TaskR2", "TaskS1", "TaskS2"]
    assert [job.output_relative for job in found.jobs] == [PurePosixPath(f) for f in files]
    assert len(found.skipped) == 1


def test_empty_root(tmp_path):
    found = discover(tmp_path)
    assert (found.jobs, found.skipped, found.errors) == ([], [], [])


def test_bad_roots(tmp_path):
    with pytest.raises(InputRootError, match="does not exist"):
        discover(tmp_path / "missing")
    (tmp_path / "file.mat").write_bytes(b"")
    with pytest.raises(InputRootError, match="not a directory"):
        discover(tmp_path / "file.mat")


def test_symlink_loop_terminates_and_files_are_found_once(tmp_path):
    touch(tmp_path, "MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat")
    patient = tmp_path / "MultiCoil/Cine/TestSet/AccFactor04/P001"
    (patient / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "self").symlink_to(".", target_is_directory=True)
    found = discover(tmp_path)
    assert [str(job.relative_path) for job in found.jobs] == ["MultiCoil/Cine/TestSet/AccFactor04/P001/cine_sax.mat"]
    assert sum("already visited" in reason for _, reason in found.skipped) == 2


def test_follows_directory_links_and_prefers_real_paths(tmp_path):
    outside = tmp_path / "outside"
    touch(outside, "P005/cine_sax_kus_Uniform8.mat")
    root = tmp_path / "root"
    touch(root, "Cine/TestSet/UnderSample_Task1/z_real/P001/cine_lax_kus_Uniform4.mat")
    (root / "Cine/TestSet/UnderSample_Task1/P005").symlink_to(outside / "P005", target_is_directory=True)
    (root / "Cine/TestSet/UnderSample_Task1/a_link").symlink_to(root / "Cine/TestSet/UnderSample_Task1/z_real")
    (root / "dangling.mat").symlink_to(tmp_path / "nowhere.mat")
    found = discover(root)
    assert [str(job.relative_path) for job in found.jobs] == [
        "Cine/TestSet/UnderSample_Task1/P005/cine_sax_kus_Uniform8.mat",
        "Cine/TestSet/UnderSample_Task1/z_real/P001/cine_lax_kus_Uniform4.mat",
    ]
    reasons = dict((path.name, reason) for path, reason in found.skipped)
    assert "broken symlink" in reasons["dangling.mat"] and "already visited" in reasons["a_link"]


def test_unreadable_directory_is_recorded(tmp_path):
    touch(tmp_path, "Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat",
          "Cine/TestSet/UnderSample_Task1/P002/cine_sax_kus_Uniform8.mat")
    locked = tmp_path / "Cine/TestSet/UnderSample_Task1/P002"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that ignore directory permissions")
        found = discover(tmp_path)
    finally:
        locked.chmod(0o755)
    assert [job.patient for job in found.jobs] == ["P001"]
    assert [path for path, _ in found.errors] == [locked]
    assert "cannot read directory" in found.errors[0][1]


def test_directory_that_cannot_be_listed_is_recorded_even_as_root(tmp_path, monkeypatch):
    touch(tmp_path, "Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat",
          "Cine/TestSet/UnderSample_Task1/P002/cine_sax_kus_Uniform8.mat")
    locked = tmp_path / "Cine/TestSet/UnderSample_Task1/P002"
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = discover(tmp_path)
    assert [job.patient for job in found.jobs] == ["P001"]
    assert found.errors == [(locked, "cannot read directory: Permission denied")]


def test_undecodable_name_is_recorded(tmp_path):
    folder = tmp_path / "Cine/TestSet/UnderSample_Task1/P001"
    folder.mkdir(parents=True)
    try:
        with open(os.path.join(os.fsencode(folder), b"cine_\xff_kus_Uniform8.mat"), "wb"):
            pass
    except OSError:
        pytest.skip("file system refuses non-UTF-8 names")
    found = discover(tmp_path)
    assert found.jobs == []
    assert len(found.errors) == 1 and "UTF-8" in found.errors[0][1]


def test_two_inputs_for_one_output_keep_the_first(tmp_path):
    touch(tmp_path, "Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat",
          "MultiCoil/Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat")
    found = discover(tmp_path)
    assert [str(job.relative_path) for job in found.jobs] == [
        "Cine/TestSet/UnderSample_Task1/P001/cine_sax_kus_Uniform8.mat"]
    assert len(found.errors) == 1 and "same output path" in found.errors[0][1]


def test_dangling_symlink_named_like_an_input_is_an_error_not_a_skip(tmp_path):
    folder = tmp_path / "Cine" / "TestSet" / "UnderSample_Task2" / "P001"
    folder.mkdir(parents=True)
    (folder / "cine_sax_kus_ktRadial8.mat").symlink_to(tmp_path / "gone.mat")
    (folder / "notes.mat").symlink_to(tmp_path / "gone-too.mat")
    found = discover(tmp_path)
    assert [path.name for path, _ in found.errors] == ["cine_sax_kus_ktRadial8.mat"]
    assert "notes.mat" in [path.name for path, _ in found.skipped]
