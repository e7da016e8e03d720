"""Held-out evaluation: predict.py on every evaluation group and method, the organisers' 2024 scores per
(trajectory, AF), GENRE's PSNR margins over the baselines and the project's quality targets.

    python -m benchmarks.evaluate --data DATA_DIR --out build/eval --results docs/results.md
        [--methods genre cgsense zerofilled] [--weights weights/genre_cmr.pt] [--extra-weights NAME=PATH ...]
        [--peers varnet sigpy-cs] [--peer-weights runs/peers] [--groups seen unseen_centre unseen_contrast]
        [--device auto] [--ensemble 2] [--single-pass] [--reuse]

DATA_DIR is the output of ``python -m training.build_data``: ``DATA_DIR/eval/{group}/{input,gt_full}`` and
``DATA_DIR/build_summary.json``. Each (group, method) runs ``python predict.py`` as a subprocess, exactly as a
user would, into ``OUT/{group}/{method}`` (emptied first; its log in ``OUT/logs``). Each ``--extra-weights
NAME=PATH`` is a GENRE generator (an ablation) evaluated as one more method row named NAME; each ``--peers``
name is a development peer (peers/: predict.py --method NAME, a learned one with ``PEER_WEIGHTS/NAME/NAME.pt``),
one more row, with GENRE's margin over it and the target that GENRE beats it on every group; ``--single-pass``
adds GENRE without its reflection ensemble. ``--reuse`` keeps the outputs of a (group, method) run whose
recorded predict.py command and weights match (``OUT/logs/GROUP-METHOD.json``), so rows can be added later. Scores are the
organisers' 2024 metric (challenge.scoring: per-image z-score normalisation, the submission as reference for
4-D arrays, per-file means); the 2024 scorer pools its groups over R, so the per-(trajectory, AF) values here
are aggregated from the per-file scores with the scorer's own group rule (sum over valid files / N_total,
the plain mean when every file is valid). Writes ``OUT/results.json`` and the Markdown ``--results``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from challenge import rules
from challenge.scoring import (FileScore, GroundTruthError, GroupSummary, ScoreReport, score_trees,
                               summarise_group)
from model.provenance import format_machine, json_safe, machine_summary
from model.reconstruction import DEFAULT_ENSEMBLE
from model.reflection import ENSEMBLES

REPO_ROOT = Path(__file__).resolve().parent.parent
YEAR = 2024
GROUPS = ("seen", "unseen_centre", "unseen_contrast")
BASELINES = ("zerofilled", "cgsense")
METHODS = ("genre", *BASELINES)
TARGET_PATTERNS = ("ktUniform", "ktGaussian", "ktRadial")
TARGET_FACTORS = (8, 16, 24)
GENRE = "genre"
SINGLE_PASS = "genre-1pass"     # GENRE without its reflection ensemble

PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "NOT MEASURED"

Cell = tuple[str, int]          # (trajectory, AF)


class EvaluationSetupError(Exception):
    """The data tree or an argument cannot be used (the message names the path and the reason)."""


@dataclass(frozen=True)
class MethodSpec:
    """One row of the tables: a predict.py method, with the weights for GENRE rows (and, where set, the
    row's own reflection ensemble instead of --ensemble)."""
    name: str
    method: str
    weights: Path | None = None
    ensemble: int | None = None


@dataclass(frozen=True)
class Target:
    """GENRE's PSNR must exceed `baseline` by `min_margin_db` in `group`: in every (trajectory, AF) cell of
    TARGET_PATTERNS x TARGET_FACTORS (per_cell) or pooled over all files of the group."""
    group: str
    baseline: str
    min_margin_db: float
    per_cell: bool
    strict: bool = False        # margin > min instead of >=

    def describe(self) -> str:
        where = "every trajectory x AF" if self.per_cell else "all files pooled"
        sign = ">" if self.strict else ">="
        return f"genre − {self.baseline} PSNR {sign} {self.min_margin_db:g} dB ({where})"


TARGETS = (
    Target("seen", "zerofilled", 8.0, per_cell=True),
    Target("seen", "cgsense", 3.0, per_cell=True),
    Target("unseen_centre", "cgsense", 0.0, per_cell=False, strict=True),
    Target("unseen_contrast", "cgsense", 0.0, per_cell=False, strict=True),
)


@dataclass(frozen=True)
class TargetCheck:
    target: Target
    cell: str                   # 'ktUniform R8' or 'all files'
    margin_db: float            # NaN when not measured
    status: str                 # PASS | FAIL | NOT MEASURED
    note: str = ""


@dataclass
class MethodScores:
    """One method on one group: the scorer's aggregate per (trajectory, AF) cell and over all files."""
    cells: dict[Cell, GroupSummary]
    overall: GroupSummary


@dataclass
class PredictRun:
    """What one predict.py subprocess did, from its exit status and run_report.json."""
    group: str
    name: str
    command: list[str]
    exit_code: int
    wall_seconds: float
    requested_method: str | None = None
    primary_method: str | None = None
    files_total: int = 0
    files_valid: int = 0
    fallbacks: int = 0
    notes: list[str] = field(default_factory=list)
    weights_sha256: str | None = None
    reused: bool = False        # outputs of an earlier run with the same command and weights (--reuse)

    def caveat(self, expected_method: str) -> str | None:
        """Why this run's outputs are not (all) the expected method's own, or None."""
        if self.primary_method is None:
            return f"predict.py wrote no run report (exit {self.exit_code})"
        problems = []
        if self.primary_method != expected_method:
            problems.append(f"ran as {self.primary_method}")
        if self.fallbacks:
            problems.append(f"{self.fallbacks} files by fallback")
        if self.files_valid < self.files_total:
            problems.append(f"{self.files_total - self.files_valid} files failed")
        return ", ".join(problems) or None


# ---------------------------------------------------------------------------------------------------------
# Pure pieces: aggregation, margins, targets.

def cell_of(relative_path: str | PurePosixPath) -> Cell:
    scored = rules.parse_output_path(YEAR, relative_path)
    return scored.pattern, scored.acceleration


def aggregate_cells(files: list[tuple[Cell, FileScore]]) -> dict[Cell, GroupSummary]:
    """Per-(trajectory, AF) aggregate of per-file scores with the 2024 scorer's group rule."""
    by_cell: dict[Cell, list[FileScore]] = {}
    for cell, score in files:
        by_cell.setdefault(cell, []).append(score)
    scoring = rules.scoring_rules(YEAR)
    return {cell: summarise_group(cell_label(cell), scores, scoring) for cell, scores in sorted(
        by_cell.items(), key=lambda item: cell_sort_key(item[0]))}


def method_scores(report: ScoreReport) -> MethodScores:
    files = [(cell_of(result.relative_path), result.score) for result in report.files]
    return MethodScores(aggregate_cells(files), report.overall)


def cell_label(cell: Cell) -> str:
    return f"{cell[0]} R{cell[1]}"


def cell_sort_key(cell: Cell) -> tuple:
    pattern, factor = cell
    order = TARGET_PATTERNS.index(pattern) if pattern in TARGET_PATTERNS else len(TARGET_PATTERNS)
    return order, pattern, factor


def psnr_of(scores: MethodScores, cell: Cell | None) -> float:
    """The cell's PSNR (the whole group for None); NaN when the cell has no files."""
    summary = scores.overall if cell is None else scores.cells.get(cell)
    return summary.psnr_adj if summary is not None else math.nan


def psnr_margins(method: MethodScores, baseline: MethodScores) -> dict[Cell | None, float]:
    """method − baseline PSNR in dB per cell of either, and for the whole group (key None)."""
    cells = sorted(set(method.cells) | set(baseline.cells), key=cell_sort_key)
    return {cell: psnr_of(method, cell) - psnr_of(baseline, cell) for cell in [*cells, None]}


def peer_targets(peer_names: list[str], groups: list[str]) -> tuple[Target, ...]:
    """GENRE must beat every peer on every group (pooled PSNR, strictly)."""
    return tuple(Target(group, name, 0.0, per_cell=False, strict=True) for group in groups for name in peer_names)


def check_targets(scores: dict[str, dict[str, MethodScores]], caveats: dict[str, str] | None = None,
                  targets: tuple[Target, ...] = TARGETS,
                  baseline_caveats: dict[tuple[str, str], str] | None = None) -> list[TargetCheck]:
    """Evaluate each target; `scores[group][method]`, `caveats[group]` says why GENRE's outputs in that group
    are not all its own (fallbacks, failures), which fails every target of the group; `baseline_caveats[(group,
    name)]` why a compared method's are not its own (a peer that fell back), which leaves its targets unmeasured."""
    caveats = caveats or {}
    baseline_caveats = baseline_caveats or {}
    checks = []
    for target in targets:
        methods = scores.get(target.group, {})
        cells: list[Cell | None] = ([(p, f) for p in TARGET_PATTERNS for f in TARGET_FACTORS]
                                    if target.per_cell else [None])
        for cell in cells:
            label = "all files" if cell is None else cell_label(cell)
            if GENRE not in methods or target.baseline not in methods:
                missing = GENRE if GENRE not in methods else target.baseline
                checks.append(TargetCheck(target, label, math.nan, NOT_MEASURED, f"{missing} not evaluated"))
                continue
            margin = psnr_of(methods[GENRE], cell) - psnr_of(methods[target.baseline], cell)
            other = baseline_caveats.get((target.group, target.baseline))
            if other:
                checks.append(TargetCheck(target, label, margin, NOT_MEASURED, f"{target.baseline} outputs: {other}"))
                continue
            if not math.isfinite(margin):
                checks.append(TargetCheck(target, label, margin, NOT_MEASURED, "no scored files in this cell"))
                continue
            passed = margin > target.min_margin_db if target.strict else margin >= target.min_margin_db
            note = caveats.get(target.group, "")
            checks.append(TargetCheck(target, label, margin, PASS if passed and not note else FAIL,
                                      f"genre outputs: {note}" if note else ""))
    return checks


# ---------------------------------------------------------------------------------------------------------
# Running predict.py and scoring.

def method_specs(methods: list[str], weights: Path, extra_weights: list[str], peer_names: list[str] = (),
                 peer_weights: Path | None = None, single_pass: bool = False) -> list[MethodSpec]:
    """Rows in order: the requested methods (with ``single_pass``, GENRE's one-pass row after its ensemble
    row), one GENRE row per NAME=PATH ablation, then one row per peer."""
    # predict.py runs from the repository root: paths given relative to the caller's folder are resolved here
    specs = [MethodSpec(m, m, weights.resolve() if m == GENRE else None) for m in methods]
    if single_pass:
        if GENRE not in methods:
            raise EvaluationSetupError("--single-pass: needs genre in --methods")
        specs.insert(methods.index(GENRE) + 1, MethodSpec(SINGLE_PASS, GENRE, weights.resolve(), ensemble=1))
    for item in extra_weights:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise EvaluationSetupError(f"--extra-weights {item!r}: expected NAME=PATH")
        if not Path(path).is_file():
            raise EvaluationSetupError(f"--extra-weights {item!r}: {path} is not a file")
        specs.append(MethodSpec(name, GENRE, Path(path).resolve()))
    specs += peer_specs(peer_names, peer_weights)
    if GENRE in methods and not specs[methods.index(GENRE)].weights.is_file():
        raise EvaluationSetupError(f"--weights {weights}: not a file; train first (make train) or leave genre "
                                   f"out of --methods")
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EvaluationSetupError(f"method row names must be unique, repeated: {', '.join(duplicates)}")
    return specs


def peer_specs(names: list[str], weights_root: Path | None) -> list[MethodSpec]:
    """A row per development peer; a learned peer's weights must exist (trained with python -m peers.train)."""
    if not names:
        return []
    import peers

    specs = []
    for name in names:
        if name not in peers.PEERS:
            raise EvaluationSetupError(f"--peers {name}: unknown; choose among {', '.join(peers.PEERS)}")
        if not peers.PEERS[name].learned:
            specs.append(MethodSpec(name, name))
            continue
        path = (Path(weights_root) / name / f"{name}.pt") if weights_root else peers.default_weights(name)
        if not path.is_file():
            raise EvaluationSetupError(f"--peers {name}: no weights at {path}; train them first "
                                       f"(python -m peers.train --peer {name}, docs/peers.md)")
        specs.append(MethodSpec(name, name, path.resolve()))
    return specs


def compared_names(specs: list[MethodSpec]) -> list[str]:
    """The rows GENRE's margins are taken over: the baselines and the peers (every non-GENRE row)."""
    return [spec.name for spec in specs if spec.method != GENRE]


def predict_command(spec: MethodSpec, input_root: Path, output_root: Path, device: str | None,
                    ensemble: int = DEFAULT_ENSEMBLE) -> list[str]:
    command = [sys.executable, "predict.py", "--input", str(input_root), "--output", str(output_root),
               "--method", spec.method]
    if spec.weights is not None:
        command += ["--weights", str(spec.weights)]
    if spec.method == GENRE:
        command += ["--ensemble", str(spec.ensemble or ensemble)]
    if device:
        command += ["--device", device]
    return command


def reusable_run(record_path: Path, command: list[str], weights_sha256: str | None,
                 output_root: Path) -> PredictRun | None:
    """The earlier run recorded at record_path if it ran this very command on the same weights and its
    outputs and run report are still there; else None."""
    if not record_path.is_file() or not (output_root / "run_report.json").is_file():
        return None
    try:
        run = PredictRun(**json.loads(record_path.read_text()))
    except (ValueError, TypeError) as error:
        print(f"   note: {record_path} unreadable ({error}): running again", flush=True)
        return None
    if run.command != command or run.weights_sha256 != weights_sha256 or run.primary_method is None:
        return None
    run.reused = True
    return run


def run_predict(spec: MethodSpec, group: str, input_root: Path, output_root: Path, log_path: Path,
                device: str | None = None, ensemble: int = DEFAULT_ENSEMBLE, reuse: bool = False) -> PredictRun:
    """predict.py as a subprocess into a fresh output_root; its stdout and stderr go to log_path, what it did
    to log_path with the suffix .json. With ``reuse``, an earlier run of the same command is kept instead."""
    command = predict_command(spec, input_root.resolve(), output_root.resolve(), device, ensemble)
    record_path = log_path.with_suffix(".json")
    weights_sha256 = None
    if spec.weights is not None and Path(spec.weights).is_file():
        from model.checkpoint import file_sha256

        weights_sha256 = file_sha256(Path(spec.weights))
    if reuse:
        earlier = reusable_run(record_path, command, weights_sha256, output_root)
        if earlier is not None:
            return earlier
    if output_root.exists():
        shutil.rmtree(output_root)
    record_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        exit_code = subprocess.run(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    run = PredictRun(group, spec.name, command, exit_code, time.monotonic() - started,
                     weights_sha256=weights_sha256)
    report_path = output_root / "run_report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        run.requested_method, run.primary_method = report["requested_method"], report["primary_method"]
        run.files_total, run.files_valid = report["files_total"], report["files_valid"]
        run.fallbacks = sum(f["outcome"] == "fallback" for f in report["files"])
        run.notes = list(report.get("notes", []))
    record_path.write_text(json.dumps(asdict(run), indent=1) + "\n")
    return run


def group_roots(data_dir: Path, group: str) -> tuple[Path, Path]:
    root = data_dir / "eval" / group
    input_root, gt_root = root / "input", root / "gt_full"
    for path in (input_root, gt_root):
        if not path.is_dir():
            raise EvaluationSetupError(f"{path}: missing; build the data with `python -m training.build_data "
                                       f"{data_dir}` (or leave {group} out with --groups)")
    return input_root, gt_root


# ---------------------------------------------------------------------------------------------------------
# Provenance: machine, data, weights.

def weights_summary(spec: MethodSpec) -> dict:
    """sha256 of the weights file and the scalar fields of its JSON record (if present)."""
    from model.checkpoint import file_sha256, record_path

    path = Path(spec.weights)
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    summary: dict = {"name": spec.name, "path": str(shown), "exists": path.is_file()}
    if not path.is_file():
        return summary
    summary["sha256"] = file_sha256(path)
    record_file = record_path(path)
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        summary["record_sha256_matches"] = record.get("sha256") == summary["sha256"]
        summary["record"] = {key: value for key, value in sorted(record.items())
                             if isinstance(value, (str, int, float, bool)) and key not in ("sha256", "file")}
    return summary


def data_summary(data_dir: Path, groups: list[str]) -> dict:
    build = data_dir / "build_summary.json"
    summary: dict = {"build_summary": json.loads(build.read_text()) if build.is_file() else None, "groups": {}}
    for group in groups:
        root = data_dir / "eval" / group
        sources = root / "sources.json"
        summary["groups"][group] = {
            "files": sum(1 for _ in (root / "gt_full").rglob("*.mat")),
            "sources": json.loads(sources.read_text()) if sources.is_file() else None,
        }
    return summary


# ---------------------------------------------------------------------------------------------------------
# Output.

def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


METRICS = (("psnr_adj", "PSNR (dB)", 2), ("ssim_adj", "SSIM", 4), ("nmse_adj", "NMSE", 4))


def group_tables(group_scores: dict[str, MethodScores], specs: list[MethodSpec]) -> list[str]:
    """Per metric: rows trajectory x AF (and all files), one column per method; then the PSNR margins."""
    names = [spec.name for spec in specs if spec.name in group_scores]
    cells = sorted({c for name in names for c in group_scores[name].cells}, key=cell_sort_key)
    lines = []
    for key, title, digits in METRICS:
        rows = []
        for cell in [*cells, None]:
            values = []
            for name in names:
                scores = group_scores[name]
                summary = scores.overall if cell is None else scores.cells.get(cell)
                values.append(_number(getattr(summary, key), digits) if summary else "–")
            rows.append(["all files", ""] if cell is None else [cell[0], str(cell[1])])
            rows[-1] += values
        lines += ["", f"**{title}**", "", *_table(["trajectory", "AF", *names], rows)]
    margin_columns = [(spec.name, base) for spec in specs if spec.method == GENRE and spec.name in group_scores
                      for base in compared_names(specs) if base in group_scores]
    if margin_columns:
        margins = {column: psnr_margins(group_scores[column[0]], group_scores[column[1]])
                   for column in margin_columns}
        rows = [(["all files", ""] if cell is None else [cell[0], str(cell[1])])
                + [_number(margins[column].get(cell, math.nan), 2) for column in margin_columns]
                for cell in [*cells, None]]
        lines += ["", "**PSNR margin (dB)**", "",
                  *_table(["trajectory", "AF", *(f"{m} − {b}" for m, b in margin_columns)], rows)]
    return lines


def format_results(results: dict, specs: list[MethodSpec], scores: dict[str, dict[str, MethodScores]],
                   runs: list[PredictRun], checks: list[TargetCheck]) -> str:
    lines = ["# Held-out evaluation (benchmarks/evaluate.py)", "",
             f"- Date: {results['date']}",
             f"- Machine: {format_machine(results['machine'])}",
             "- Commands (from the repository root):",
             f"  - `{results['command']}`"]
    lines += [f"  - `{shlex.join(['python', *run.command[1:]])}`" for run in runs]
    lines += ["  - scoring: `challenge.scoring.score_trees(gt_full, output, 2024)` per run, as "
              "`python -m challenge.scoring --gt DATA/eval/GROUP/gt_full --recon OUT/GROUP/METHOD --year 2024`",
              "- Metric: the organisers' 2024 scorer (per-image z-score normalisation, submission as reference for "
              "4-D arrays, per-file nanmean); per (trajectory, AF) cell: sum over valid files / N_total (the "
              "scorer's group rule, the plain mean when every file is valid). The scorer's own groups pool over "
              "R; these cells do not."]
    lines += ["", "## Data", ""] + _data_lines(results["data"])
    if results["weights"]:
        lines += ["", "## Weights", ""]
        for weights in results["weights"]:
            lines += _weights_lines(weights)
    lines += ["", "## predict.py runs", "", *_table(
        ["group", "method", "exit", "wall (s)", "ran as", "valid / total", "fallbacks"],
        [[run.group, run.name, str(run.exit_code),
          f"{run.wall_seconds:.1f}" + (" (earlier run, --reuse)" if run.reused else ""), run.primary_method or "–",
          f"{run.files_valid} / {run.files_total}", str(run.fallbacks)] for run in runs])]
    for group, group_scores in scores.items():
        lines += ["", f"## Group `{group}`"] + group_tables(group_scores, specs)
    lines += ["", "## Quality targets", "", *_table(["group", "target", "cell", "margin (dB)", "result", "note"],
                                                     target_rows(checks))]
    return "\n".join(lines) + "\n"


def target_rows(checks: list[TargetCheck]) -> list[list[str]]:
    """The targets table's rows: one per check, except that a target none of whose cells was measured, for one
    reason (a run without the genre row), takes one row instead of one per cell."""
    rows = []
    for target in dict.fromkeys(c.target for c in checks):
        own = [c for c in checks if c.target == target]
        if len(own) > 1 and all(c.status == NOT_MEASURED for c in own) and len({c.note for c in own}) == 1:
            rows.append([target.group, target.describe(), f"all {len(own)} cells", "–", NOT_MEASURED, own[0].note])
            continue
        rows += [[c.target.group, c.target.describe(), c.cell, _number(c.margin_db, 2), c.status, c.note] for c in own]
    return rows


def _data_lines(data: dict) -> list[str]:
    build = data["build_summary"]
    lines = []
    if build is None:
        lines.append("- build_summary.json: not found")
    else:
        scalars = {k: v for k, v in build.items() if isinstance(v, (str, int, float, bool))}
        lines.append("- build_summary.json: " + ", ".join(f"{k} = {v}" for k, v in scalars.items()))
        for key, value in build.items():
            if isinstance(value, list):
                lines.append(f"- {key} ({len(value)}): " + ", ".join(map(str, value)))
    for group, info in data["groups"].items():
        sources = info["sources"] or []
        kinds = sorted({f"{s.get('center')}/{s.get('vendor')} {s.get('base')}" for s in sources})
        lines.append(f"- `{group}`: {info['files']} ground-truth files, {len(sources)} series"
                     + (f" ({'; '.join(kinds)})" if kinds else ""))
    return lines


def _weights_lines(weights: dict) -> list[str]:
    if not weights["exists"]:
        return [f"- `{weights['name']}`: {weights['path']} not found"]
    lines = [f"- `{weights['name']}`: {weights['path']}, sha256 `{weights['sha256']}`"]
    if "record" in weights:
        match = "matches" if weights["record_sha256_matches"] else "DOES NOT match"
        lines.append(f"  - record ({match} the file): "
                     + ", ".join(f"{k} = {v}" for k, v in weights["record"].items()))
    else:
        lines.append("  - no training record beside the weights")
    return lines


def scores_to_dict(scores: dict[str, dict[str, MethodScores]]) -> dict:
    def summary(s: GroupSummary) -> dict:
        return {**asdict(s), "success_rate": s.success_rate}
    return {group: {name: {"cells": {cell_label(c): summary(s) for c, s in m.cells.items()},
                           "all_files": summary(m.overall)} for name, m in methods.items()}
            for group, methods in scores.items()}


# ---------------------------------------------------------------------------------------------------------
# CLI.

def evaluate(args: argparse.Namespace, command: str) -> tuple[dict, list[TargetCheck]]:
    specs = method_specs(args.methods, args.weights, args.extra_weights, args.peers, args.peer_weights,
                         args.single_pass)
    roots = {group: group_roots(args.data, group) for group in args.groups}
    scores: dict[str, dict[str, MethodScores]] = {}
    runs: list[PredictRun] = []
    caveats: dict[str, str] = {}
    peer_caveats: dict[tuple[str, str], str] = {}
    for group, (input_root, gt_root) in roots.items():
        scores[group] = {}
        for spec in specs:
            print(f"== {group}: {spec.name}", flush=True)
            run = run_predict(spec, group, input_root, args.out / group / spec.name,
                              args.out / "logs" / f"{group}-{spec.name}.log", args.device, args.ensemble,
                              args.reuse)
            runs.append(run)
            if run.reused:
                print("   outputs of an earlier run of the same command (--reuse)", flush=True)
            caveat = run.caveat(spec.method)
            if caveat:
                print(f"   note: {caveat}", flush=True)
                if spec.name == GENRE:
                    caveats[group] = caveat
                elif spec.name in args.peers:
                    peer_caveats[(group, spec.name)] = caveat
            scores[group][spec.name] = method_scores(score_trees(gt_root, args.out / group / spec.name, YEAR))
            print(f"   {run.wall_seconds:.1f} s, PSNR {scores[group][spec.name].overall.psnr_adj:.2f} dB", flush=True)
    checks = check_targets(scores, caveats, TARGETS + peer_targets(args.peers, args.groups), peer_caveats)
    results = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="minutes"),
        "command": command, "machine": machine_summary(), "data": data_summary(args.data, args.groups),
        "weights": [weights_summary(s) for s in specs if s.weights is not None],
        "runs": [asdict(run) for run in runs], "scores": scores_to_dict(scores),
        "margins_psnr_db": {group: {f"{s.name} - {b}": {("all files" if c is None else cell_label(c)): v
                                                        for c, v in psnr_margins(g[s.name], g[b]).items()}
                                    for s in specs if s.method == GENRE and s.name in g
                                    for b in compared_names(specs) if b in g}
                            for group, g in scores.items()},
        "targets": [{"group": c.target.group, "target": c.target.describe(), "cell": c.cell,
                     "margin_db": c.margin_db, "status": c.status, "note": c.note} for c in checks],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(json_safe(results), indent=2, allow_nan=False) + "\n")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(format_results(results, specs, scores, runs, checks))
    return results, checks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="output folder of training.build_data")
    parser.add_argument("--out", type=Path, default=Path("build/eval"), help="reconstructions, logs, results.json")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"), help="Markdown report")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--weights", type=Path, default=Path("weights/genre_cmr.pt"))
    parser.add_argument("--extra-weights", nargs="*", default=[], metavar="NAME=PATH",
                        help="ablation generators, each evaluated as a GENRE row named NAME")
    parser.add_argument("--peers", nargs="*", default=[], metavar="NAME",
                        help="development peers (peers/: varnet, sigpy-cs), each one more row")
    parser.add_argument("--peer-weights", type=Path, help="DIR/NAME/NAME.pt per learned peer (default runs/peers)")
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--device", help="passed to predict.py --device (default: its own)")
    parser.add_argument("--ensemble", type=int, choices=sorted(ENSEMBLES), default=DEFAULT_ENSEMBLE,
                        help="passed to predict.py --ensemble for GENRE rows")
    parser.add_argument("--single-pass", action="store_true",
                        help=f"one more row, {SINGLE_PASS!r}: the same generator with --ensemble 1")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a (group, method) run's outputs from an earlier run of this evaluation with the "
                             "same predict.py command instead of running it again (rows added later)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.evaluate", *(sys.argv[1:] if argv is None else argv)])
    try:
        _, checks = evaluate(args, command)
    except (EvaluationSetupError, GroundTruthError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for check in checks:
        print(f"{check.status:12s} {check.target.group:16s} {check.cell:14s} {check.target.describe()}")
    print(f"wrote {args.results} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
