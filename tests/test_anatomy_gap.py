"""benchmarks.anatomy_gap: its three pools of subjects, windows drawn from a pool only, and the margins it reports."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import anatomy_gap, validation_by_kind
from benchmarks.validation_by_kind import kind_windows
from model.checkpoint import save_generator
from model.config import PRESETS as MODEL_PRESETS
from model.generator import GenreGenerator
from training import trainer as trainer_module
from training.build_data import HELDOUT_SUBJECTS, UNSEEN_CENTRE
from training.config import PRESETS
from training.simulated import KINDS, SourceSeries

CONFIG = dataclasses.replace(PRESETS["cpu"], phantoms=1, crop_width=32)


def fake_pool(monkeypatch, present=True):
    """Four subjects per seen centre (one of them held out) and three of the unseen centre."""
    records = []
    for centre, held in (("Center001", "Center001_P005"), ("Center003", "Center003_P006"), (UNSEEN_CENTRE, None)):
        names = [f"{centre}_P00{i}" for i in range(1, 4)] + ([held] if held else [])
        records += [SimpleNamespace(center=centre, folder=name) for name in names]

    def pool(keep):
        if not present:
            return []
        rng = np.random.default_rng(0)
        return [SourceSeries(rng.random((6, 40, 48)).astype(np.float32), r.center, f"{r.folder}/sax1")
                for r in records if keep(r)]
    monkeypatch.setattr(anatomy_gap, "real_cine_pool", pool)
    monkeypatch.setattr(trainer_module, "real_cine_pool", pool)


def subjects(series):
    return {s.subject.split("/")[0] for s in series}


def test_the_pools_are_the_validation_the_held_out_and_the_unseen_centre_subjects_and_disjoint(monkeypatch):
    fake_pool(monkeypatch)
    pools = anatomy_gap.pools(CONFIG)
    validation = set(trainer_module.simulated_samplers(CONFIG)[3]["val_subjects"])
    assert subjects(pools["validation"]) == validation and validation
    assert subjects(pools["held-out"]) == {"Center001_P005", "Center003_P006"} <= HELDOUT_SUBJECTS
    assert {s.center for s in pools["unseen centre"]} == {UNSEEN_CENTRE} and len(pools["unseen centre"]) == 3
    assert not validation & subjects(pools["held-out"])
    assert all(s.center != UNSEEN_CENTRE for s in pools["validation"] + pools["held-out"])


def test_windows_come_from_the_given_series_only_and_the_validation_windows_are_unchanged(monkeypatch):
    fake_pool(monkeypatch)
    held_out = anatomy_gap.pools(CONFIG)["held-out"]
    built = []

    class Recording(validation_by_kind.SimulatedSampler):
        def __init__(self, series, *args, **kwargs):
            built.append(series)
            super().__init__(series, *args, **kwargs)
    monkeypatch.setattr(validation_by_kind, "SimulatedSampler", Recording)
    windows = kind_windows(2, CONFIG, series=held_out)
    assert sorted(windows) == sorted(KINDS) and len(built) == len(KINDS)
    assert all(series is held_out for series in built)
    monkeypatch.undo()
    fake_pool(monkeypatch)
    default, explicit = kind_windows(2, CONFIG), kind_windows(2, CONFIG, series=anatomy_gap.pools(CONFIG)["validation"])
    for kind in KINDS:
        for a, b in zip(default[kind], explicit[kind], strict=True):
            torch.testing.assert_close(a.masked_kspace, b.masked_kspace)


def test_margins_are_the_mean_over_kinds_less_zero_filled_and_the_pool_differences_follow():
    kinds = len(KINDS)
    table = lambda zf, genre: np.array([[(zf + k, 0.5), (genre + k, 0.7)] for k in range(kinds)])   # (kinds, 2, 2)
    rows = anatomy_gap.report(["G"], {"validation": table(20.0, 26.0), "held-out": table(18.0, 23.5),
                                      "unseen centre": table(19.0, 23.0)})
    text = "\n".join(rows)
    assert "| validation | 21.50 | +6.00 |" in text and "| held-out | 19.50 | +5.50 |" in text
    assert "| validation − held-out | | +0.50 |" in text and "| validation − unseen centre | | +2.00 |" in text


def test_a_run_writes_its_report_and_without_real_anatomy_says_so(monkeypatch, tmp_path, capsys):
    torch.manual_seed(0)
    config = dataclasses.replace(MODEL_PRESETS["tiny"], view_sharing=True)
    weights = tmp_path / "tiny.pt"
    save_generator(weights, config, GenreGenerator(config).state_dict(), {"data": "random"})
    monkeypatch.setattr(anatomy_gap, "PRESETS", {"cpu": CONFIG})
    fake_pool(monkeypatch)
    out = tmp_path / "gap.md"
    assert anatomy_gap.main(["--weights", str(weights), "--labels", "tiny", "--windows", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for pool in ("validation", "held-out", "unseen centre"):
        assert all(f"| {pool} | {kind} |" in text for kind in KINDS)
    assert "| validation − held-out |" in text and "Center003_P006" in text
    fake_pool(monkeypatch, present=False)
    assert anatomy_gap.main(["--weights", str(weights), "--out", str(tmp_path / "none.md")]) == 2
    assert "no real cine anatomy" in capsys.readouterr().err and not (tmp_path / "none.md").exists()
