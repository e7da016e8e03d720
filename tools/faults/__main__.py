"""Build the fault tree under OUT (with --run: run predict.py over every scenario and check every case)."""
import argparse
import sys
import time
from pathlib import Path

from tools.faults.checks import Check, check_run, format_checks
from tools.faults.expected import EXPECTED_NAME, Scenario, load_expected
from tools.faults.running import permission_prefix, run_scenario
from tools.faults.trees import SCENARIO_NAMES, build_fault_tree


class UnknownScenario(ValueError):
    """--scenarios named a scenario the fault tree does not have."""


def check_names(names: list[str], known: tuple[str, ...] | list[str] = SCENARIO_NAMES) -> None:
    """UnknownScenario naming every one of ``names`` that is not a scenario of the fault tree."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise UnknownScenario(f"no scenario {', '.join(unknown)}; the scenarios are {', '.join(known)}")


def chosen(scenarios: list[Scenario], names: list[str] | None) -> list[Scenario]:
    """The scenarios named (all when None), with those whose output they start from, in the tree's order;
    UnknownScenario naming an unknown one."""
    if names is None:
        return scenarios
    by_name = {s.name: s for s in scenarios}
    check_names(names, list(by_name))
    keep, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name not in keep:
            keep.add(name)
            pending += [by_name[name].copy_output_of] if by_name[name].copy_output_of else []
    return [s for s in scenarios if s.name in keep]


def run_faults(out: Path, build: bool = True, names: list[str] | None = None) -> list[Check]:
    """Build (unless told not to) and run every scenario, or those ``names`` chooses; returns every check."""
    out = Path(out)
    if build:
        build_fault_tree(out)
    scenarios, cases = load_expected(out)
    scenarios = chosen(scenarios, names)
    running = {s.name for s in scenarios}
    cases = [case for case in cases if case.scenario in running]
    prefix = permission_prefix()
    checks = []
    started_all = time.monotonic()
    lines = ["scenario                    seconds  peak RSS (MiB)  rows by outcome"]
    for scenario in scenarios:
        started = time.monotonic()
        run = run_scenario(out, scenario, cases, prefix)
        checks += check_run(out, scenario, cases, run)
        seconds = time.monotonic() - started
        print(f"ran {scenario.name} in {seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes: dict[str, int] = {}
        for row in (run.report or {}).get("files", []):
            outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
        peak = run.details.get("peak_rss_mib")
        lines.append(f"{scenario.name:<26} {seconds:8.1f}  {'-' if peak is None else f'{peak:14.0f}':>14}  "
                     + (run.skipped and f"skipped: {run.skipped}"
                        or ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "no report"))
    expected_outcomes: dict[str, int] = {}
    for case in cases:
        expected_outcomes[case.outcome] = expected_outcomes.get(case.outcome, 0) + 1
    lines.append(f"{len(cases)} cases in {len(scenarios)} scenarios, expected outcomes "
                 + ", ".join(f"{k} {v}" for k, v in sorted(expected_outcomes.items()))
                 + f"; {time.monotonic() - started_all:.0f} s in all")
    print("\n".join(lines), flush=True)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.faults", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the trees, expected.json and the runs' outputs")
    parser.add_argument("--run", action="store_true", help="also run predict.py over the trees and check")
    parser.add_argument("--scenarios", nargs="+", metavar="NAME",
                        help="with --run: only these scenarios (and those whose output they start from)")
    args = parser.parse_args(argv)
    if args.scenarios and not args.run:
        parser.error("--scenarios chooses what --run runs; the tree is always built whole")
    try:
        check_names(args.scenarios or [])      # before the tree is built (seconds)
    except UnknownScenario as error:
        parser.error(str(error))
    if not args.run:
        expected = build_fault_tree(args.out)
        print(f"{len(expected['cases'])} cases in {len(expected['scenarios'])} scenarios under {args.out}; "
              f"see {args.out / EXPECTED_NAME}")
        return 0
    try:
        checks = run_faults(args.out, names=args.scenarios)
    except UnknownScenario as error:      # only the names: any other error is the run's, not a usage error
        parser.error(str(error))
    print(format_checks(checks))
    return 1 if any(not check.ok for check in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
