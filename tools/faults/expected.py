"""What every scenario and case of the fault tree must end with, and expected.json that holds them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

EXPECTED_NAME = "expected.json"
ABSENT = "absent"                  # a case that must produce no report row (a loop, an empty folder)


@dataclass
class FaultCase:
    """One input (or folder) and what the run must do with it."""
    name: str
    scenario: str
    description: str
    input: str                        # relative to the scenario's input root
    outcome: str                      # model | fallback | failed | resumed | absent
    output: str | None = None         # relative to the output root
    output_shape: list[int] | None = None
    reason: str | None = None         # substring of the row's reason
    note: str | None = None           # substring of one of the row's notes
    method: str | None = None         # the method that wrote the output
    fault: str | None = None          # injected model fault (see FaultyModel)


@dataclass
class Scenario:
    """One run of predict.py (or of runner.run with an injected model) and what it must end with."""
    name: str
    description: str
    input_root: str                   # relative to OUT
    output_root: str                  # relative to OUT
    exit_code: int
    arguments: list[str] = field(default_factory=list)   # predict.py arguments besides --input/--output;
                                                          # '{out}' stands for the fault tree's folder
    report: bool = True               # a run_report.json must be written
    message: str | None = None        # substring of the run's output or the report's error
    run_note: str | None = None       # substring of one of the report's notes
    primary_method: str | None = None
    in_process: bool = False          # runner.run with the fault-injecting model instead of predict.py
    needs_permissions: bool = False   # only meaningful where file permissions bind
    damage: dict[str, str] = field(default_factory=dict)  # output relative -> truncate|garbage|wrong_shape|delete
    temporaries: list[str] = field(default_factory=list)  # left-over temporary files to plant (relative)
    copy_output_of: str | None = None # start from a copy of this scenario's output root
    unreadable: list[str] = field(default_factory=list)   # input paths given mode 000 for the run
    read_only_output: bool = False    # the output root has mode 555 for the run
    max_slab_bytes: int | None = None
    max_traced_bytes: int | None = None  # peak numpy memory of an in-process run must stay below this
    # issue 17: what surrounds the run
    plant: dict[str, str] = field(default_factory=dict)   # output relative -> folder | file | wrong_shape |
                                                          # link:<path relative to OUT> (made before the run)
    env: dict[str, str] = field(default_factory=dict)     # extra environment of the predict.py child
    pipe_lines: int | None = None     # stdout+stderr into a pipe closed after this many lines (`| head -N`)
    tmpfs_bytes: int | None = None    # the output root is a tmpfs of this size (needs mount; root)
    prerun: bool = False              # run once before (a valid earlier run), then the scenario's run
    disk_free_bytes: int | None = None  # fill the output filesystem after the prerun, leaving this much free
    needs_no_cuda: bool = False       # only meaningful where CUDA is absent


def load_expected(out: Path) -> tuple[list[Scenario], list[FaultCase]]:
    saved = json.loads((Path(out) / EXPECTED_NAME).read_text())
    return [Scenario(**s) for s in saved["scenarios"]], [FaultCase(**c) for c in saved["cases"]]
