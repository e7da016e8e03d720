"""Training/evaluation data builder: the subject split never leaks, and the trees are what their readers expect."""
import json

import pytest

from challenge.discovery import discover
from simulation.anatomy import list_cine_series, real_data_root
from training import build_data
from training.layouts import find_training_files


def test_split_keeps_heldout_subjects_and_the_unseen_centre_out_of_training():
    if real_data_root() is None:
        pytest.skip("../shared/data/real is absent")
    splits = {}
    for record in list_cine_series():
        splits.setdefault(build_data.split_of(record), set()).add(record.folder)
    assert splits["seen"] == build_data.HELDOUT_SUBJECTS
    assert all(folder.startswith(build_data.UNSEEN_CENTRE) for folder in splits["unseen_centre"])
    assert splits["train"].isdisjoint(splits["seen"] | splits["unseen_centre"])
    assert not any(folder.startswith(build_data.UNSEEN_CENTRE) for folder in splits["train"])


@pytest.mark.slow
def test_phantom_only_build_writes_readable_training_and_evaluation_trees(tmp_path, monkeypatch):
    monkeypatch.setenv("GENRE_REAL_DATA", str(tmp_path / "absent"))
    summary = build_data.build_all(tmp_path, seed=0, realisations=1, phantoms_per_contrast=1)
    files = find_training_files(tmp_path / "train")
    assert len(files) == summary["train_files"] == 3
    assert {f.domain_name for f in files} == {"Phantom:Cine", "Phantom:Mapping"}
    assert not any(f.base == build_data.UNSEEN_CONTRAST for f in files)
    jobs = discover(tmp_path / "eval" / "unseen_contrast" / "input").jobs
    assert len(jobs) == summary["unseen_contrast_files"] == 27
    assert {(j.pattern, j.acceleration) for j in jobs} == {(p, r) for p in build_data.EVAL_PATTERNS
                                                          for r in build_data.EVAL_FACTORS}
    for job in jobs:
        assert job.mask_path.exists() and job.modality == "Tagging"
        assert (tmp_path / "eval" / "unseen_contrast" / "gt_full" / job.output_relative).exists()
    assert json.loads((tmp_path / "build_summary.json").read_text())["seed"] == 0
