"""The pure pieces of benchmarks/evaluate.py, bench_predict.py and validation_windows.py (no predict.py runs
here), and validation_by_domain.py on a small tree."""
import math
from pathlib import Path

import pytest

from benchmarks.bench_predict import (BEGIN, END, figure_link, outside_network_share, replace_section,
                                      replicate_tree, replicated_name)
from benchmarks.evaluate import (FAIL, NOT_MEASURED, PASS, TARGET_FACTORS, TARGET_PATTERNS, EvaluationSetupError,
                                 MethodScores, MethodSpec, PredictRun, aggregate_cells, check_targets, group_tables,
                                 method_scores, method_specs, peer_targets, predict_command, psnr_margins,
                                 run_predict, target_rows)
from benchmarks.validation_by_domain import main as validation_by_domain
from benchmarks.validation_windows import seen_in_training_note, trained_on_every_subject
from challenge import rules
from challenge.scoring import GroupedFileScore, FileScore, ScoreReport, summarise_group
from model.checkpoint import save_generator
from model.config import preset
from model.generator import GenreGenerator
from tests.test_training import write_tree

SCORING = rules.scoring_rules(2024)


def _score(psnr: float, ssim: float = 0.9, nmse: float = 0.01) -> FileScore:
    return FileScore(psnr=psnr, ssim=ssim, nmse=nmse, num_images=4)


def _output_path(pattern: str, factor: int, patient: int = 1) -> str:
    return f"Cine/TestSet/Task2/P{patient:03d}/cine_sax_kus_{pattern}{factor}.mat"


def _uniform_scores(psnr_by_cell: dict, overall: float) -> MethodScores:
    """MethodScores whose every listed cell (and the pooled value) has the given PSNR."""
    cells = {cell: summarise_group(str(cell), [_score(value)], SCORING) for cell, value in psnr_by_cell.items()}
    return MethodScores(cells, summarise_group("all", [_score(overall)], SCORING))


ALL_CELLS = [(p, f) for p in TARGET_PATTERNS for f in TARGET_FACTORS]


# --- aggregation -------------------------------------------------------------------------------------------

def test_aggregate_cells_means_per_pattern_and_factor():
    files = [(("ktRadial", 8), _score(30.0, 0.8, 0.02)), (("ktRadial", 8), _score(34.0, 0.9, 0.04)),
             (("ktRadial", 16), _score(25.0)), (("ktUniform", 8), _score(40.0))]
    cells = aggregate_cells(files)
    assert list(cells) == [("ktUniform", 8), ("ktRadial", 8), ("ktRadial", 16)]   # trajectory order, then AF
    radial8 = cells[("ktRadial", 8)]
    assert radial8.num_files == 2 and radial8.num_valid == 2
    assert radial8.psnr_adj == pytest.approx(32.0)
    assert radial8.ssim_adj == pytest.approx(0.85)
    assert radial8.nmse_adj == pytest.approx(0.03)
    assert cells[("ktRadial", 16)].psnr_adj == pytest.approx(25.0)


def test_aggregate_cells_penalises_invalid_files_like_the_2024_scorer():
    files = [(("ktGaussian", 24), _score(30.0)), (("ktGaussian", 24), FileScore(invalid_reason="missing"))]
    cell = aggregate_cells(files)[("ktGaussian", 24)]
    assert cell.num_valid == 1 and cell.success_rate == 0.5
    assert cell.psnr == pytest.approx(30.0)           # mean of the valid files
    assert cell.psnr_adj == pytest.approx(15.0)       # sum over valid / N_total


def test_method_scores_reads_cells_from_output_paths():
    results = [GroupedFileScore(_output_path("ktUniform", 8, 1), ("Cine/ktUniform",), _score(31.0)),
               GroupedFileScore(_output_path("ktUniform", 8, 2), ("Cine/ktUniform",), _score(33.0)),
               GroupedFileScore(_output_path("ktUniform", 24, 1), ("Cine/ktUniform",), _score(21.0))]
    overall = summarise_group("all", [r.score for r in results], SCORING)
    report = ScoreReport(2024, "gt", "recon", results, [overall], overall, {})
    scores = method_scores(report)
    assert set(scores.cells) == {("ktUniform", 8), ("ktUniform", 24)}
    assert scores.cells[("ktUniform", 8)].psnr_adj == pytest.approx(32.0)
    assert scores.overall.psnr_adj == pytest.approx(85.0 / 3)


# --- margins and targets -----------------------------------------------------------------------------------

def test_psnr_margins_per_cell_and_pooled():
    genre = _uniform_scores({("ktUniform", 8): 38.0, ("ktRadial", 24): 30.0}, 34.0)
    baseline = _uniform_scores({("ktUniform", 8): 29.5, ("ktRadial", 24): 31.0}, 30.0)
    margins = psnr_margins(genre, baseline)
    assert margins[("ktUniform", 8)] == pytest.approx(8.5)
    assert margins[("ktRadial", 24)] == pytest.approx(-1.0)
    assert margins[None] == pytest.approx(4.0)


def _target_scores(genre_seen: float, zf_seen: float, cg_seen: float, unseen_margin: float) -> dict:
    def group(genre, cg, zf=None):
        methods = {"genre": _uniform_scores(dict.fromkeys(ALL_CELLS, genre), genre),
                   "cgsense": _uniform_scores(dict.fromkeys(ALL_CELLS, cg), cg)}
        if zf is not None:
            methods["zerofilled"] = _uniform_scores(dict.fromkeys(ALL_CELLS, zf), zf)
        return methods
    return {"seen": group(genre_seen, cg_seen, zf_seen),
            "unseen_centre": group(30.0 + unseen_margin, 30.0),
            "unseen_contrast": group(30.0 + unseen_margin, 30.0)}


def test_targets_pass_at_exact_thresholds():
    checks = check_targets(_target_scores(genre_seen=38.0, zf_seen=30.0, cg_seen=35.0, unseen_margin=0.5))
    assert len(checks) == 2 * len(ALL_CELLS) + 2
    assert all(c.status == PASS for c in checks), [c for c in checks if c.status != PASS]


def test_targets_fail_below_thresholds_and_at_zero_unseen_margin():
    checks = check_targets(_target_scores(genre_seen=37.9, zf_seen=30.0, cg_seen=34.0, unseen_margin=0.0))
    by_target = {}
    for check in checks:
        by_target.setdefault((check.target.group, check.target.baseline), set()).add(check.status)
    assert by_target[("seen", "zerofilled")] == {FAIL}         # 7.9 dB < 8 dB
    assert by_target[("seen", "cgsense")] == {PASS}            # 3.9 dB >= 3 dB
    assert by_target[("unseen_centre", "cgsense")] == {FAIL}   # the margin must be strictly positive
    assert by_target[("unseen_contrast", "cgsense")] == {FAIL}


def test_targets_seen_cgsense_margin_below_three_fails():
    checks = check_targets(_target_scores(genre_seen=37.9, zf_seen=29.0, cg_seen=35.0, unseen_margin=1.0))
    seen_cg = [c for c in checks if c.target.group == "seen" and c.target.baseline == "cgsense"]
    assert {c.status for c in seen_cg} == {FAIL}
    assert seen_cg[0].margin_db == pytest.approx(2.9)
    seen_zf = [c for c in checks if c.target.group == "seen" and c.target.baseline == "zerofilled"]
    assert {c.status for c in seen_zf} == {PASS}


def test_targets_single_cell_failure_is_reported_for_that_cell_only():
    scores = _target_scores(genre_seen=40.0, zf_seen=28.0, cg_seen=35.0, unseen_margin=1.0)
    scores["seen"]["genre"].cells[("ktRadial", 24)] = summarise_group("x", [_score(37.0)], SCORING)
    failed = [(c.target.baseline, c.cell) for c in check_targets(scores) if c.status == FAIL]
    assert failed == [("cgsense", "ktRadial R24")]


def test_targets_not_measured_without_genre_or_missing_cells():
    scores = _target_scores(genre_seen=40.0, zf_seen=30.0, cg_seen=35.0, unseen_margin=1.0)
    del scores["unseen_contrast"]["genre"]
    del scores["seen"]["zerofilled"].cells[("ktGaussian", 16)]
    checks = check_targets(scores)
    statuses = {(c.target.group, c.target.baseline, c.cell): c.status for c in checks}
    assert statuses[("unseen_contrast", "cgsense", "all files")] == NOT_MEASURED
    assert statuses[("seen", "zerofilled", "ktGaussian R16")] == NOT_MEASURED
    assert statuses[("seen", "zerofilled", "ktGaussian R8")] == PASS
    assert math.isnan(next(c.margin_db for c in checks if c.status == NOT_MEASURED))


def test_target_rows_fold_a_target_measured_nowhere_into_one_row():
    scores = _target_scores(genre_seen=40.0, zf_seen=30.0, cg_seen=35.0, unseen_margin=1.0)
    del scores["seen"]["cgsense"]
    del scores["seen"]["zerofilled"].cells[("ktGaussian", 16)]
    rows = target_rows(check_targets(scores))
    per_cell = len(TARGET_PATTERNS) * len(TARGET_FACTORS)
    cg = [r for r in rows if r[0] == "seen" and "cgsense" in r[1]]
    assert cg == [["seen", cg[0][1], f"all {per_cell} cells", "–", NOT_MEASURED, "cgsense not evaluated"]]
    # a target measured in some cells keeps a row per cell, the unmeasured one included
    zf = [r for r in rows if r[0] == "seen" and "zerofilled" in r[1]]
    assert len(zf) == per_cell and [r[4] for r in zf].count(NOT_MEASURED) == 1


def test_targets_fail_when_genre_outputs_came_from_a_fallback():
    scores = _target_scores(genre_seen=40.0, zf_seen=30.0, cg_seen=35.0, unseen_margin=1.0)
    checks = check_targets(scores, caveats={"unseen_centre": "ran as cgsense"})
    unseen = [c for c in checks if c.target.group == "unseen_centre"]
    assert [c.status for c in unseen] == [FAIL] and "ran as cgsense" in unseen[0].note
    assert all(c.status == PASS for c in checks if c.target.group != "unseen_centre")


def test_predict_run_caveat_names_fallbacks_and_failures():
    run = PredictRun("seen", "genre", [], 1, 1.0, "genre", "cgsense", files_total=9, files_valid=8, fallbacks=2)
    assert run.caveat("genre") == "ran as cgsense, 2 files by fallback, 1 files failed"
    clean = PredictRun("seen", "genre", [], 0, 1.0, "genre", "genre", files_total=9, files_valid=9)
    assert clean.caveat("genre") is None
    assert "no run report" in PredictRun("seen", "genre", [], 2, 1.0).caveat("genre")


def test_predict_command_names_the_ensemble_for_genre_rows_only():
    genre = predict_command(MethodSpec("genre", "genre", Path("w.pt")), Path("in"), Path("out"), None, ensemble=4)
    assert genre[genre.index("--ensemble") + 1] == "4" and genre[genre.index("--weights") + 1] == "w.pt"
    assert "--ensemble" not in predict_command(MethodSpec("cgsense", "cgsense"), Path("in"), Path("out"), "cpu")


def test_single_pass_row_is_the_same_generator_without_its_ensemble(tmp_path):
    weights = tmp_path / "genre_cmr.pt"
    weights.write_bytes(b"w")
    specs = method_specs(["genre", "zerofilled"], weights, [], single_pass=True)
    assert [(s.name, s.method, s.weights) for s in specs] == [
        ("genre", "genre", weights), ("genre-1pass", "genre", weights), ("zerofilled", "zerofilled", None)]
    single = predict_command(specs[1], Path("in"), Path("out"), None, ensemble=2)
    plain = predict_command(specs[0], Path("in"), Path("out"), None, ensemble=2)
    assert single[single.index("--ensemble") + 1] == "1" and plain[plain.index("--ensemble") + 1] == "2"
    with pytest.raises(EvaluationSetupError, match="needs genre"):
        method_specs(["zerofilled"], weights, [], single_pass=True)


def test_reuse_keeps_an_earlier_run_only_with_the_same_command_weights_and_outputs(tmp_path, monkeypatch):
    import json
    import subprocess

    calls = []

    def fake_predict(command, cwd, stdout, stderr):
        calls.append(command)
        out = Path(command[command.index("--output") + 1])
        out.mkdir(parents=True)
        (out / "run_report.json").write_text(json.dumps({
            "requested_method": "genre", "primary_method": "genre", "files_total": 1, "files_valid": 1,
            "files": [{"outcome": "ok"}]}))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr("benchmarks.evaluate.subprocess.run", fake_predict)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"one")
    spec, out, log = MethodSpec("genre", "genre", weights), tmp_path / "out", tmp_path / "logs" / "seen-genre.log"

    def run(reuse=True, ensemble=2):
        return run_predict(spec, "seen", tmp_path / "in", out, log, None, ensemble, reuse=reuse)

    first = run()
    assert len(calls) == 1 and not first.reused and log.with_suffix(".json").is_file()
    again = run()
    assert len(calls) == 1 and again.reused and again.wall_seconds == first.wall_seconds
    run(ensemble=4)                             # another command
    assert len(calls) == 2
    run(ensemble=4, reuse=False)                # not asked to reuse
    assert len(calls) == 3
    weights.write_bytes(b"two")                 # the same path, other weights
    run(ensemble=4)
    assert len(calls) == 4
    (out / "run_report.json").unlink()          # outputs gone
    run(ensemble=4)
    assert len(calls) == 5


def test_group_tables_show_values_and_margins():
    specs = [MethodSpec("genre", "genre", Path("w.pt")), MethodSpec("cgsense", "cgsense")]
    scores = {"genre": _uniform_scores({("ktUniform", 8): 36.25}, 36.0),
              "cgsense": _uniform_scores({("ktUniform", 8): 33.0}, 32.5)}
    text = "\n".join(group_tables(scores, specs))
    assert "| ktUniform | 8 | 36.25 | 33.00 |" in text
    assert "| genre − cgsense |" in text
    assert "| ktUniform | 8 | 3.25 |" in text and "| all files |  | 3.50 |" in text


def test_method_specs_adds_ablation_rows_and_rejects_bad_ones(tmp_path):
    ablation = tmp_path / "no_sda.pt"
    ablation.write_bytes(b"x")
    weights = tmp_path / "genre_cmr.pt"
    weights.write_bytes(b"w")
    specs = method_specs(["genre", "zerofilled"], weights, [f"no_sda={ablation}"])
    assert [(s.name, s.method) for s in specs] == [("genre", "genre"), ("zerofilled", "zerofilled"),
                                                   ("no_sda", "genre")]
    assert specs[0].weights.is_absolute() and specs[1].weights is None and specs[2].weights == ablation
    with pytest.raises(EvaluationSetupError, match="NAME=PATH"):
        method_specs(["genre"], weights, ["no_sda"])
    with pytest.raises(EvaluationSetupError, match="missing.pt is not a file"):
        method_specs(["genre"], weights, [f"x={tmp_path / 'missing.pt'}"])
    with pytest.raises(EvaluationSetupError, match="unique"):
        method_specs(["genre"], weights, [f"genre={ablation}"])
    with pytest.raises(EvaluationSetupError, match="train first"):
        method_specs(["genre", "cgsense"], tmp_path / "untrained.pt", [])
    assert [s.name for s in method_specs(["cgsense"], tmp_path / "untrained.pt", [])] == ["cgsense"]


def test_peers_are_rows_with_their_weights_and_genre_margins_and_targets_over_them(tmp_path):
    weights = tmp_path / "genre_cmr.pt"
    weights.write_bytes(b"w")
    (tmp_path / "peers" / "varnet").mkdir(parents=True)
    (tmp_path / "peers" / "varnet" / "varnet.pt").write_bytes(b"v")
    specs = method_specs(["genre", "cgsense"], weights, [], ["varnet", "sigpy-cs"], tmp_path / "peers")
    assert [(s.name, s.method) for s in specs] == [("genre", "genre"), ("cgsense", "cgsense"), ("varnet", "varnet"),
                                                   ("sigpy-cs", "sigpy-cs")]
    assert specs[2].weights == (tmp_path / "peers" / "varnet" / "varnet.pt").resolve() and specs[3].weights is None
    command = predict_command(specs[2], Path("in"), Path("out"), None)
    assert command[command.index("--method") + 1] == "varnet" and "--ensemble" not in command
    assert command[command.index("--weights") + 1] == str(specs[2].weights)
    with pytest.raises(EvaluationSetupError, match="python -m peers.train --peer varnet"):
        method_specs(["cgsense"], weights, [], ["varnet"], tmp_path / "elsewhere")
    with pytest.raises(EvaluationSetupError, match="unknown"):
        method_specs(["cgsense"], weights, [], ["bart-pics"], tmp_path / "peers")

    group = {"genre": _uniform_scores({("ktUniform", 8): 36.0}, 35.0),
             "cgsense": _uniform_scores({("ktUniform", 8): 33.0}, 32.0),
             "varnet": _uniform_scores({("ktUniform", 8): 36.5}, 35.5),
             "sigpy-cs": _uniform_scores({("ktUniform", 8): 34.0}, 33.0)}
    text = "\n".join(group_tables(group, specs))
    assert "| genre − cgsense | genre − varnet | genre − sigpy-cs |" in text
    assert "| all files |  | 3.00 | -0.50 | 2.00 |" in text
    checks = check_targets({"seen": group}, targets=peer_targets(["varnet", "sigpy-cs"], ["seen"]))
    assert [(c.target.baseline, c.status, round(c.margin_db, 2)) for c in checks] == [("varnet", FAIL, -0.5),
                                                                                     ("sigpy-cs", PASS, 2.0)]
    fell_back = check_targets({"seen": group}, targets=peer_targets(["varnet"], ["seen"]),
                              baseline_caveats={("seen", "varnet"): "ran as cgsense"})
    assert fell_back[0].status == NOT_MEASURED and "ran as cgsense" in fell_back[0].note


# --- bench_predict -----------------------------------------------------------------------------------------

def test_replace_section_keeps_other_sections_and_is_idempotent():
    other = "<!-- bench_model:start -->\n## Generator model\n| a |\n<!-- bench_model:end -->\n"
    text = "# Benchmarks\n\n" + other
    first = replace_section(text, f"{BEGIN}\nold numbers\n{END}\n")
    assert first.startswith(text.rstrip("\n")) and first.endswith(f"{BEGIN}\nold numbers\n{END}\n")
    trailing = first + "\n## Notes\nkept\n"
    second = replace_section(trailing, f"{BEGIN}\nnew numbers\n{END}\n")
    assert "old numbers" not in second and "new numbers" in second
    assert other in second and second.endswith("\n## Notes\nkept\n")
    assert second.count(BEGIN) == 1 and second.count(END) == 1
    assert replace_section(second, f"{BEGIN}\nnew numbers\n{END}\n") == second


def test_figure_links_are_relative_to_the_page_that_shows_them():
    assert figure_link(Path("docs/figures/a.png"), Path("docs/native-eval.md")) == "figures/a.png"
    assert figure_link(Path("build/figs-28/a.png"), Path("build/page.md")) == "figs-28/a.png"
    assert figure_link(Path("build/figs/a.png"), Path("docs/page.md")) == "../build/figs/a.png"


def test_replicated_names_are_distinct_patient_folders():
    assert replicated_name("P001", 0) == "P001"
    assert [replicated_name("P001", k) for k in (1, 2, 3)] == ["P1001", "P2001", "P3001"]
    assert replicated_name("P12", 3) == "P312"
    assert replicated_name("case_a", 2) == "case_a_c2"


def test_replicated_tree_has_four_times_the_files_with_distinct_outputs(tmp_path):
    source = tmp_path / "input"
    for patient in ("P001", "P002"):
        for pattern in ("ktUniform8", "ktRadial24"):
            kus = source / "Cine" / "TestSet" / "UnderSample_Task2" / patient / f"cine_sax_kus_{pattern}.mat"
            mask = source / "Cine" / "TestSet" / "Mask_Task2" / patient / f"cine_sax_mask_{pattern}.mat"
            for path in (kus, mask):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(path.name.encode())
    destination = tmp_path / "x4"
    written = replicate_tree(source, destination, 4)
    source_files = [p for p in source.rglob("*") if p.is_file()]
    copied = [p for p in destination.rglob("*") if p.is_file()]
    assert written == len(copied) == 4 * len(source_files) == 32
    jobs = [rules.parse_job(destination, p) for p in copied]
    jobs = [job for job in jobs if job is not None]
    assert len(jobs) == 16
    assert len({job.output_relative for job in jobs}) == 16
    assert all(job.mask_path.is_file() for job in jobs)     # each copy keeps its own mask beside it
    assert (destination / "Cine/TestSet/UnderSample_Task2/P3002/cine_sax_kus_ktRadial24.mat").read_bytes() \
        == b"cine_sax_kus_ktRadial24.mat"


def test_outside_network_share_from_phase_timings():
    files = [{"read_seconds": 1.0, "reconstruct_seconds": 6.0, "write_seconds": 0.5},
             {"read_seconds": 1.0, "reconstruct_seconds": 2.0, "write_seconds": 0.5}]
    assert outside_network_share(files, 10.0) == pytest.approx(0.2)
    assert outside_network_share([{"seconds": 3.0}], 10.0) is None
    assert outside_network_share([], 10.0) is None


def test_ensemble_validation_says_when_the_weights_saw_its_windows():
    assert seen_in_training_note({"train_config": {"val_fraction": 0.2}}) == []
    assert seen_in_training_note({}) == []
    assert "seen in training" in seen_in_training_note({"train_config": {"val_fraction": 0.0}})[0]
    assert trained_on_every_subject({"train_config": {"val_fraction": 0.0}})
    assert not trained_on_every_subject({"train_config": {"val_fraction": 0.2}}) and not trained_on_every_subject({})


def test_validation_by_domain_scores_every_weights_file_on_the_same_windows(tmp_path):
    tree = write_tree(tmp_path / "tree")
    config = preset("tiny")
    weights = tmp_path / "tiny.pt"
    save_generator(weights, config, GenreGenerator(config).state_dict(), {})
    out = tmp_path / "table.md"
    assert validation_by_domain(["--weights", str(weights), str(weights), "--data", str(tree),
                                 "--windows", "1", "--out", str(out)]) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| Center")
            or line.startswith("| Phantom")]
    assert {row[0][2:] for row in rows} == {"Center001:Cine", "Center002:Cine", "Phantom:Mapping"}
    assert len(rows) == 3 * 3
    for row in rows:
        first, second = float(row[3]), float(row[4].rstrip(" |"))
        assert math.isfinite(first) and first == second    # the same windows for each file
    assert validation_by_domain(["--weights", str(weights), "--data", str(tmp_path / "none")]) == 2
