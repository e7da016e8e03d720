"""training.siblings: several runs of one recipe on their own draws, started at once, then averaged."""
import sys
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_generator
from tests.test_training import REPO, write_tree
from training.__main__ import main as train_main
from training.siblings import Sibling, main as siblings_main, plan_siblings, run_siblings


def test_each_sibling_gets_its_own_seed_run_dir_and_export_and_shares_the_rest(tmp_path):
    recipe = ["--preset", "cpu", "--init-from", "w.pt", "--lr", "5e-5"]
    siblings = plan_siblings(tmp_path, [381, 382], recipe)
    assert [s.seed for s in siblings] == [381, 382]
    for sibling in siblings:
        tail = sibling.command[sibling.command.index("training") + 1:]
        assert tail[:len(recipe)] == recipe
        assert tail[len(recipe):] == ["--run-dir", str(tmp_path / f"B{sibling.seed}"), "--draw-seed",
                                      str(sibling.seed), "--export", str(tmp_path / f"B{sibling.seed}.pt")]


@pytest.mark.parametrize("seeds, recipe, message", [
    ([1, 1], ["--init-from", "w.pt"], "must differ"),
    ([], ["--init-from", "w.pt"], "at least one"),
    ([1], ["--init-from", "w.pt", "--draw-seed", "3"], "launcher sets it"),
    ([1], ["--init-from", "w.pt", "--export=x.pt"], "launcher sets it"),
    ([1], ["--preset", "cpu"], "--init-from"),
])
def test_a_plan_that_cannot_give_one_basin_of_siblings_is_refused(tmp_path, seeds, recipe, message):
    with pytest.raises(ValueError, match=message):
        plan_siblings(tmp_path, seeds, recipe)


@pytest.mark.slow
def test_two_siblings_train_and_their_mean_is_written_with_both_in_its_record(tmp_path, monkeypatch):
    tree = write_tree(tmp_path / "tree")
    start = tmp_path / "start.pt"
    train_main(["--data", str(tree), "--run-dir", str(tmp_path / "start"), "--preset", "smoke", "--epochs", "1",
                "--steps-per-epoch", "1", "--all-subjects", "--device", "cpu", "--export", str(start)])
    monkeypatch.chdir(REPO)
    runs, soup = tmp_path / "runs", tmp_path / "soup.pt"
    assert siblings_main(["--run-dir", str(runs), "--draw-seeds", "5", "6", "--out", str(soup), "--",
                          "--data", str(tree), "--preset", "smoke", "--epochs", "1", "--steps-per-epoch", "2",
                          "--all-subjects", "--device", "cpu", "--workers", "0", "--init-from", str(start)]) == 0
    generator, record = load_generator(soup)
    children = [load_generator(runs / f"B{seed}.pt") for seed in (5, 6)]
    assert [Path(s["weights"]).name for s in record["averaged_from"]] == ["B5.pt", "B6.pt"]
    assert [s["sha256"] for s in record["averaged_from"]] == [c[1]["sha256"] for c in children]
    assert record["init_from"]["sha256"] == load_generator(start)[1]["sha256"]
    a, b = (c[0].state_dict() for c in children)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())   # their own draws
    for name, value in generator.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (a[name] + b[name]) / 2, msg=name)


def test_a_sibling_that_fails_is_left_out_and_named(tmp_path, capsys):
    ok = Sibling(1, tmp_path / "B1", tmp_path / "B1.pt", tmp_path / "B1.log",
                 [sys.executable, "-c", f"open({str(tmp_path / 'B1.pt')!r}, 'w').write('x')"])
    bad = Sibling(2, tmp_path / "B2", tmp_path / "B2.pt", tmp_path / "B2.log",
                  [sys.executable, "-c", "raise SystemExit(3)"])
    assert run_siblings([ok, bad]) == [ok]
    assert "sibling 2 failed (exit 3)" in capsys.readouterr().err
