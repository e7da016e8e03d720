"""A fault-tree run against its expectations: run-wide checks (exit status, report consistency, leftovers,
surroundings, measurements) and one check per case (outcome, reason, notes, method, output file)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from challenge import output_safety
from challenge.report import BY_FALLBACK, FAILED, VALID_OUTCOMES
from tools.faults.expected import ABSENT, FaultCase, Scenario
from tools.faults.running import RunResult

KEPT_NOTE = "validates and was kept"      # output_safety's note on an earlier output left at a failed input's path


# ---------------------------------------------------------------------------------------------------------
# checking

@dataclass
class Check:
    scenario: str
    case: str
    expected: str
    actual: str
    status: str = "ok"        # ok | MISMATCH | skip
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "MISMATCH"


def check_run(out: Path, scenario: Scenario, cases: list[FaultCase], run: RunResult) -> list[Check]:
    """Every check of one scenario: run-wide ones (case '*') first, then one per case."""
    mine = [case for case in cases if case.scenario == scenario.name]
    if run.skipped:
        return [Check(scenario.name, case, "-", "-", "skip", run.skipped)
                for case in ["*", *(c.name for c in mine)]]
    checks = [_check_scenario(out, scenario, mine, run)]
    rows: dict[str, dict] = {}
    for row in (run.report or {}).get("files", []):
        rows.setdefault(row["input_relative"], row)
    output_root = Path(out) / scenario.output_root
    owned = {case.output for case in mine if case.outcome in VALID_OUTCOMES}   # another input's valid output
    # paths whose occupant is not the run's to judge: planted things (checked apart) and outputs that resolve
    # into the input root (the input itself)
    input_root = os.path.realpath(Path(out) / scenario.input_root)
    owned |= {case.output for case in mine if case.output and (
        any(case.output == p or case.output.startswith(p + "/") for p in scenario.plant)
        or os.path.realpath(output_root / case.output).startswith(input_root + os.sep))}
    checks += [_check_case(case, rows, output_root, run.output_text, owned) for case in mine]
    return checks


def _check_scenario(out: Path, scenario: Scenario, mine: list[FaultCase], run: RunResult) -> Check:
    problems = []
    if run.exit_code != scenario.exit_code:
        problems.append(f"exit status {run.exit_code}, expected {scenario.exit_code}")
    report = run.report
    if scenario.report and report is None:
        problems.append("no run_report.json")
    if not scenario.report and report is not None:
        problems.append("a run_report.json was written")
    if report is not None:
        problems += _report_consistency(report, run.exit_code)
        rows = [row["input_relative"] for row in report["files"]]
        expected_rows = {case.input for case in mine if case.outcome != ABSENT}
        if len(rows) != len(set(rows)):
            problems.append("duplicate rows in the report")
        if set(rows) != expected_rows:
            problems.append(f"rows {sorted(set(rows) ^ expected_rows)} unexpected or missing")
        if scenario.primary_method and report["primary_method"] != scenario.primary_method:
            problems.append(f"primary method {report['primary_method']}, expected {scenario.primary_method}")
        if scenario.run_note and not any(scenario.run_note in note for note in report["notes"]):
            problems.append(f"no run note with {scenario.run_note!r}")
    if scenario.message and scenario.message not in run.output_text + str((report or {}).get("error")):
        problems.append(f"{scenario.message!r} not said")
    if run.input_before != run.input_after:
        changed = sorted(set(run.input_before.items()) ^ set(run.input_after.items()))
        problems.append(f"input root changed: {changed[:3]}")
    valid_outputs = {case.output for case in mine if case.outcome in VALID_OUTCOMES}
    kept = {row["output_relative"] for row in (report or {}).get("files", [])
            if any(KEPT_NOTE in note for note in row["notes"])}
    kept |= set(run.details.get("outputs_before", {}))       # a full disk: the earlier run's outputs stay
    planted = {relative for relative, kind in scenario.plant.items() if kind != "wrong_shape"}
    leftovers = sorted(f for f in run.output_files
                       if f not in valid_outputs | kept | planted and not re.fullmatch(r"run_report[^/]*\.json", f)
                       and not (f.startswith(output_safety.MOVED_ASIDE + "/") and f.endswith(
                           output_safety.MOVED_SUFFIX))
                       and not (not scenario.report and f == "run_report.json.stale"))
    if leftovers:
        problems.append(f"unexpected files in the output root: {leftovers[:5]}")
    problems += _check_measurements(scenario, run)
    problems += _check_surroundings(scenario, run)
    expected = f"exit {scenario.exit_code}" + ("" if scenario.report else ", no report")
    actual = f"exit {run.exit_code}" + ("" if report is not None else ", no report")
    return Check(scenario.name, "*", expected, actual, "MISMATCH" if problems else "ok",
                 "; ".join(problems) or scenario.description)


def _check_surroundings(scenario: Scenario, run: RunResult) -> list[str]:
    """Issue 17: no hang, a summary and an exit line on stdout, planted things left alone (a stale
    wrong-shape output moved aside), the earlier run's outputs byte for byte where the disk was full."""
    problems = []
    details = run.details
    if details.get("hung"):
        problems.append("the run hung (killed at the timeout)")
    if scenario.pipe_lines is None and not scenario.in_process and run.exit_code in (0, 1) \
            and f"exit code {run.exit_code}" not in run.output_text:
        problems.append("no 'exit code' line on stdout")
    after = details.get("planted_after", {})
    for relative, kind in scenario.plant.items():
        before_state, after_state = details.get("planted", {}).get(relative), after.get(relative)
        if kind == "wrong_shape":
            moved = [f for f in run.output_files if f.startswith(f"{output_safety.MOVED_ASIDE}/{relative}")]
            if after_state != "nothing" or not moved:
                problems.append(f"the stale {relative} was not moved aside ({after_state}; moved: {moved})")
        elif before_state != after_state:
            problems.append(f"{relative} changed: {before_state} -> {after_state}")
    before, now = details.get("outputs_before"), details.get("outputs_after")
    if before is not None:
        changed = sorted(name for name, digest in before.items() if now.get(name) != digest)
        if changed:
            problems.append(f"earlier outputs changed or deleted: {changed[:3]}")
    return problems


def _report_consistency(report: dict, exit_code: int | None) -> list[str]:
    """The JSON report must agree with itself and with the exit status."""
    problems = []
    files = report["files"]
    valid = sum(row["outcome"] in VALID_OUTCOMES for row in files)
    if report["exit_code"] != exit_code:
        problems.append(f"report says exit {report['exit_code']}, the run exited {exit_code}")
    if (report["files_total"], report["files_valid"]) != (len(files), valid):
        problems.append("files_total/files_valid disagree with the rows")
    if files and abs(report["success_rate"] - valid / len(files)) > 1e-9:
        problems.append("success_rate disagrees with the rows")
    should_exit = 0 if report["error"] is None and valid == len(files) else 1
    if report["exit_code"] != should_exit:
        problems.append(f"exit code {report['exit_code']} but {valid}/{len(files)} valid, error {report['error']}")
    failed = [{"file": row["input_relative"], "reason": row["reason"]} for row in files if row["outcome"] == FAILED]
    if report["failures"] != failed:
        problems.append("the failures list disagrees with the rows")
    return problems


def _check_measurements(scenario: Scenario, run: RunResult) -> list[str]:
    problems = []
    details = run.details
    if scenario.max_slab_bytes and details.get("largest_call_bytes", 0) > scenario.max_slab_bytes:
        problems.append(f"the model saw {details['largest_call_bytes']} bytes of k-space at once, "
                        f"bound {scenario.max_slab_bytes}")
    if scenario.max_traced_bytes and details.get("peak_traced_bytes", 0) > scenario.max_traced_bytes:
        problems.append(f"peak numpy memory {details['peak_traced_bytes']} above {scenario.max_traced_bytes}")
    return problems


def _check_case(case: FaultCase, rows: dict[str, dict], output_root: Path, output_text: str,
                owned: set[str]) -> Check:
    if case.outcome == ABSENT:
        hits = [name for name in rows if name == case.input or name.startswith(case.input + "/")]
        return Check(case.scenario, case.name, ABSENT, "absent" if not hits else f"{len(hits)} rows",
                     "MISMATCH" if hits else "ok", case.description)
    row = rows.get(case.input)
    if row is None:
        return Check(case.scenario, case.name, case.outcome, "no row", "MISMATCH", case.input)
    problems = []
    if row["outcome"] != case.outcome:
        problems.append(f"outcome {row['outcome']} ({row['reason']})")
    if case.reason and case.reason not in (row["reason"] or ""):
        problems.append(f"reason {row['reason']!r} lacks {case.reason!r}")
    if case.note and not any(case.note in note for note in row["notes"]):
        problems.append(f"notes {row['notes']} lack {case.note!r}")
    if case.method and row["method"] != case.method:
        problems.append(f"method {row['method']}, expected {case.method}")
    if row["outcome"] in (FAILED, BY_FALLBACK) and not row["reason"]:
        problems.append("no reason given")
    if row["outcome"] in (FAILED, BY_FALLBACK) and not _said(output_text, case.input, row["reason"]):
        problems.append("the run's output has no line naming the file and its reason")
    kept = any(KEPT_NOTE in note for note in row["notes"])
    if case.output is not None and (case.outcome in VALID_OUTCOMES or case.output not in owned) and not kept:
        problems += _check_output(output_root / case.output, case)
    actual = row["outcome"] + (f" ({row['method']})" if row["method"] else "")
    detail = "; ".join(problems) or (row["reason"] or "; ".join(row["notes"]) or case.description)
    return Check(case.scenario, case.name, case.outcome, actual, "MISMATCH" if problems else "ok", detail)


def _said(text: str, name: str, reason: str | None) -> bool:
    """Some line of the run's output names the file and gives the reason (the organisers' only log)."""
    return bool(reason) and any(name in line and reason in line for line in text.splitlines())


def _check_output(path: Path, case: FaultCase) -> list[str]:
    """A valid outcome needs a validated output (re-read with scipy); a failed one must leave none."""
    if case.outcome not in VALID_OUTCOMES:
        return [f"an output {path.name} exists for a failed input"] if path.exists() else []
    try:
        image = scipy.io.loadmat(path)["img4ranking"]
    except Exception as error:
        return [f"output unreadable: {type(error).__name__}: {error}"]
    problems = []
    if image.dtype != np.float32:
        problems.append(f"output dtype {image.dtype}")
    if case.output_shape is not None and list(image.shape) != case.output_shape:
        problems.append(f"output shape {image.shape}, expected {tuple(case.output_shape)}")
    if not np.isfinite(image).all() or not image.any():
        problems.append("output non-finite or all zero")
    return problems


def format_checks(checks: list[Check]) -> str:
    header = ("scenario", "case", "expected", "actual", "result", "detail")
    rows = [header, *((c.scenario, c.case, c.expected, c.actual, c.status, c.detail) for c in checks)]
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row[:5], widths)) + "  " + str(row[5])
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  ------")
    mismatches = sum(c.status == "MISMATCH" for c in checks)
    skipped = sum(c.status == "skip" for c in checks)
    lines.append(f"{len(checks)} checks: {len(checks) - mismatches - skipped} ok, {mismatches} mismatched, "
                 f"{skipped} skipped")
    return "\n".join(lines)
