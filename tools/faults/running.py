"""One scenario of the fault tree in its surroundings: predict.py in a child process (or runner.run here with
the injected model), with a read-only input root, planted outputs, unreadable files, a full disk or a closed
pipe as the scenario says; what the run left behind is collected for tools.faults.checks."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io

from tools.faults.expected import FaultCase, Scenario, load_expected
from tools.faults.injected import faulty_factory
from tools.faults.trees import remove_tree

REPO = Path(__file__).resolve().parents[2]     # the checkout: predict.py runs from here
PIPE_TIMEOUT_S = 300                      # a run into a closed pipe that takes longer than this has hung
PREDICT_TIMEOUT_S = 600


# ---------------------------------------------------------------------------------------------------------
# permissions

def permission_prefix() -> list[str] | None:
    """Command prefix under which file permissions bind for a child process, or None where they cannot.

    Not root: none needed. Root: setpriv dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding
    set (root then obeys mode bits like any owner), if setpriv exists and a probe confirms it.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            finished = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r})"],
                                      capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
    return prefix if "PermissionError" in finished.stderr else None


class _ReadOnly:
    """chmod -R a-w over a tree for the duration of a run (modes restored after); ``active`` False: nothing."""

    def __init__(self, root: Path, active: bool = True):
        self.root, self.active = root, active
        self.modes: dict[Path, int] = {}

    def __enter__(self):
        if not self.active:
            return self
        for path in [self.root, *_walk(self.root)]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                self.modes[path] = stat.S_IMODE(mode)
                path.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return self

    def __exit__(self, *exc):
        for path, mode in self.modes.items():
            path.chmod(mode)


def _walk(root: Path) -> list[Path]:
    """Every path under root without following symlinks; unreadable folders are listed, not entered."""
    found = []
    for folder, dirs, files in os.walk(root):
        found += [Path(folder) / name for name in dirs + files]
    return found


def snapshot(root: Path) -> dict[str, tuple]:
    """(type, mode, size, mtime) of every path under root, symlinks not followed."""
    result = {}
    for path in [root, *_walk(root)]:
        info = path.lstat()
        result[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                               info.st_size, info.st_mtime_ns)
    return result


# ---------------------------------------------------------------------------------------------------------
# running

@dataclass
class RunResult:
    scenario: str
    exit_code: int | None = None
    output_text: str = ""
    report: dict | None = None
    input_before: dict = field(default_factory=dict)
    input_after: dict = field(default_factory=dict)
    output_files: set[str] = field(default_factory=set)
    skipped: str | None = None         # why the scenario was not run
    details: dict = field(default_factory=dict)   # in-process measurements


def run_scenario(out: Path, scenario: Scenario, cases: list[FaultCase], prefix: list[str] | None) -> RunResult:
    """Run one scenario (predict.py in a child process, or runner.run here) with its input root read-only."""
    out = Path(out)
    result = RunResult(scenario.name)
    if scenario.needs_permissions and prefix is None:
        result.skipped = "running as root without setpriv: file permissions do not bind"
        return result
    if scenario.needs_no_cuda and _cuda_available():
        result.skipped = "CUDA is available here"
        return result
    input_root, output_root = out / scenario.input_root, out / scenario.output_root
    if scenario.copy_output_of:
        source = next(s for s in load_expected(out)[0] if s.name == scenario.copy_output_of)
        remove_tree(output_root)
        shutil.copytree(out / source.output_root, output_root, symlinks=True)
        _damage_outputs(output_root, scenario)
    mounted = False
    if scenario.tmpfs_bytes:
        if output_root.is_mount():
            _unmount(output_root)
        remove_tree(output_root)
        output_root.mkdir(parents=True)
        why = _mount_tmpfs(output_root, scenario.tmpfs_bytes)
        if why:
            result.skipped = f"cannot mount a tmpfs for a full disk: {why}"
            return result
        mounted = True
    try:
        _plant(out, output_root, scenario.plant)
        result.details["planted"] = _planted_state(output_root, scenario.plant)
        with _ReadOnly(input_root), _ReadOnly(output_root, scenario.read_only_output):
            for relative in scenario.unreadable:     # modes come back with _ReadOnly's exit
                (input_root / relative).chmod(0)
            result.input_before = snapshot(input_root)
            if scenario.in_process:
                _run_in_process(scenario, cases, input_root, output_root, result)
            else:
                command = [*(prefix or []), sys.executable, str(REPO / "predict.py"), "--input", str(input_root),
                           "--output", str(output_root),
                           *(a.replace("{out}", str(out)) for a in scenario.arguments)]
                if scenario.prerun:
                    first = _run_child(command, scenario, pipe_lines=None)
                    if first["exit_code"] != 0:
                        result.skipped = f"the earlier (pre-)run failed: {first['output'][-500:]}"
                        return result
                    result.details["outputs_before"] = _file_bytes(output_root, input_root)
                if scenario.disk_free_bytes is not None:
                    result.details["free_bytes"] = _fill_filesystem(output_root, scenario.disk_free_bytes)
                child = _run_child(command, scenario, scenario.pipe_lines)
                result.exit_code, result.output_text = child["exit_code"], child["output"]
                result.details.update(peak_rss_mib=child["peak_rss_mib"], seconds=child["seconds"],
                                      hung=child["hung"])
            result.input_after = snapshot(input_root)
        _collect_outputs(output_root, input_root, result)
        result.details["planted_after"] = _planted_state(output_root, scenario.plant)
        if scenario.prerun:
            result.details["outputs_after"] = _file_bytes(output_root, input_root)
    finally:
        if mounted:
            _unmount(output_root)
    return result


def _collect_outputs(output_root: Path, input_root: Path, result: RunResult) -> None:
    """Every file under the output root (the input root left out when it lies inside) and the report."""
    if not output_root.is_dir():
        return
    inside = os.path.abspath(input_root) + os.sep          # links not followed: OUT may be relative
    result.output_files = {str(PurePosixPath(*p.relative_to(output_root).parts)) for p in _walk(output_root)
                           if not p.is_dir() and not os.path.abspath(p).startswith(inside)
                           and not p.name.startswith(BALLAST_NAME)}
    reports = sorted(output_root.glob("run_report*.json"))
    if len(reports) == 1:
        result.report = json.loads(reports[0].read_text())


def _run_child(command: list[str], scenario: Scenario, pipe_lines: int | None) -> dict:
    """predict.py in a child process: exit status, output, peak RSS, seconds; ``pipe_lines``: read that many
    lines of stdout+stderr, then close the pipe as `| head -N` does. A child that outlives the timeout is killed
    and reported as hung. The peak RSS comes from /usr/bin/time (a small parent: a child forked from this
    process would inherit this process's high-water mark in wait4's ru_maxrss); None where it is missing."""
    env = {**os.environ, **scenario.env}
    started = time.monotonic()
    timer = shutil.which("time", path="/usr/bin:/bin")
    rss_file = tempfile.NamedTemporaryFile(prefix="fault-tree-rss-", delete=False)
    rss_file.close()
    if timer:
        command = [timer, "-q", "-f", "%M", "-o", rss_file.name, *command]
    with tempfile.TemporaryFile("w+") as sink:
        if pipe_lines is None:
            process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
                                       start_new_session=True)
        else:
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=env, start_new_session=True)
            lines = [process.stdout.readline() for _ in range(pipe_lines)]
            process.stdout.close()
            sink.write("".join(lines))
        timeout = PIPE_TIMEOUT_S if pipe_lines is not None else PREDICT_TIMEOUT_S
        exit_code, hung = None, False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                exit_code = os.waitstatus_to_exitcode(status)
                process.returncode = exit_code
                break
            if time.monotonic() - started > timeout:
                hung = True
                os.killpg(process.pid, 9)         # its own session: the timer and predict.py both
                _, status, _ = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.1)
        sink.seek(0)
        output = sink.read()
    if hung:
        output += f"\n(killed after {timeout} s: the run hung)"
    try:
        peak = int(Path(rss_file.name).read_text().split()[-1]) / 1024 if timer else None
    except (OSError, ValueError, IndexError):
        peak = None
    finally:
        os.unlink(rss_file.name)
    return {"exit_code": None if hung else exit_code, "output": output, "peak_rss_mib": peak,
            "seconds": time.monotonic() - started, "hung": hung}


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


BALLAST_NAME = ".fault-tree-ballast"


def _mount_tmpfs(folder: Path, size: int) -> str | None:
    """Mount a tmpfs of ``size`` bytes on folder; None on success, else why not."""
    if shutil.which("mount") is None:
        return "no mount command"
    try:
        finished = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                  capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    return None if finished.returncode == 0 else (finished.stderr.strip() or f"exit {finished.returncode}")


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def _fill_filesystem(folder: Path, leave: int) -> int:
    """Fill folder's filesystem with a ballast file, then give back ``leave`` bytes; returns the bytes free."""
    ballast = folder / BALLAST_NAME
    block = b"\0" * 4096
    with open(ballast, "ab", buffering=0) as stream:    # unbuffered: nothing left to fail at close
        try:
            while stream.write(block):
                pass
        except OSError:
            pass
    size = ballast.stat().st_size
    with open(ballast, "r+b") as stream:
        stream.truncate(max(0, size - leave))
    info = os.statvfs(folder)
    return info.f_bavail * info.f_frsize


def _file_bytes(output_root: Path, input_root: Path) -> dict[str, str]:
    """sha256 of every regular file under output_root (the ballast and the report left out)."""
    import hashlib
    found = {}
    for path in _walk(output_root):
        if path.is_file() and not path.is_symlink() and not path.name.startswith(BALLAST_NAME) \
                and not path.name.startswith("run_report") and input_root.resolve() not in path.resolve().parents:
            found[str(PurePosixPath(*path.relative_to(output_root).parts))] = \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _plant(out: Path, output_root: Path, plant: dict[str, str]) -> None:
    """What sits in the output root before the run (Scenario.plant)."""
    if plant:
        remove_tree(output_root)
    for relative, kind in plant.items():
        path = output_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "folder":
            path.mkdir()
        elif kind == "file":
            path.write_text("a regular file where a folder of outputs goes\n")
        elif kind == "wrong_shape":
            scipy.io.savemat(path, {"img4ranking": np.ones((5, 5), np.float32)})
        elif kind.startswith("link:"):
            path.symlink_to(Path(out).resolve() / kind[len("link:"):])   # absolute: OUT may be relative
        else:
            raise ValueError(f"unknown plant {kind!r}")


def _planted_state(output_root: Path, plant: dict[str, str]) -> dict[str, str]:
    state = {}
    for relative in plant:
        path = output_root / relative
        if path.is_symlink():
            state[relative] = f"link to {os.readlink(path)}"
        elif path.is_dir():
            state[relative] = f"folder of {sorted(os.listdir(path))}"
        elif path.is_file():
            state[relative] = f"file of {path.stat().st_size} bytes"
        else:
            state[relative] = "nothing"
    return state


def _damage_outputs(output_root: Path, scenario: Scenario) -> None:
    for relative, kind in scenario.damage.items():
        path = output_root / relative
        if kind == "truncate":
            with open(path, "r+b") as stream:
                stream.truncate(path.stat().st_size // 2)
        elif kind == "garbage":
            path.write_bytes(b"\x00garbage" * 64)
        elif kind == "wrong_shape":
            scipy.io.savemat(path, {"img4ranking": np.ones((5, 5), np.float32)})
        elif kind == "delete":
            path.unlink()
        else:
            raise ValueError(f"unknown damage {kind!r}")
    for relative in scenario.temporaries:
        (output_root / relative).parent.mkdir(parents=True, exist_ok=True)
        (output_root / relative).write_bytes(b"left over by a killed run")


def _run_in_process(scenario: Scenario, cases: list[FaultCase], input_root: Path, output_root: Path,
                    result: RunResult) -> None:
    from challenge.runner import RunOptions, run

    faults = {case.input: case.fault for case in cases if case.scenario == scenario.name and case.fault}
    factory = faulty_factory(faults)
    options = RunOptions(input_root=input_root, output_root=output_root, method="genre", device="cpu",
                         max_slab_bytes=scenario.max_slab_bytes or RunOptions.max_slab_bytes)
    tracemalloc.start()
    try:
        report = run(options, reconstructor_factory=factory)
        result.details["peak_traced_bytes"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result.exit_code = report.exit_code
    result.output_text = report.format_text()
    model = factory.model
    result.details.update(largest_call_bytes=model.largest_call_bytes, calls=dict(model.calls),
                          out_of_memory_batch_sizes=model.out_of_memory_batch_sizes,
                          batch_size_after=model.batch_size)
