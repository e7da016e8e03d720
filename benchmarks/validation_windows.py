"""The validation subjects' windows that benchmarks.ensemble_validation, validation_by_domain and validation_by_kind
score: the split every training preset uses (seed 0), never the held-out evaluation trees; and their reports' header."""
import datetime
import sys
from pathlib import Path

from model.checkpoint import file_sha256
from model.provenance import format_machine, machine_summary
from training.config import PRESETS
from training.dataset import Sample, WindowSampler, fixed_validation_samples, split_by_subject
from training.layouts import TrainingFile, find_training_files
from training.slice_index import SliceReader

SPLIT = PRESETS["cpu"]    # the split, ACS and window size every training preset shares
# (label, trajectories, accelerations, windows)
GROUPS = (("Cartesian AF 24", ("ktUniform", "ktGaussian"), (24,), 40),
          ("Cartesian AF 8/16", ("ktUniform", "ktGaussian"), (8, 16), 24),
          ("ktRadial AF 8/16/24", ("ktRadial",), (8, 16, 24), 24))


def training_tree_exists(data: Path) -> bool:
    """False, with the error and the command that builds it on stderr, when the training tree is missing."""
    if data.is_dir():
        return True
    print(f"error: --data {data} is not a directory (python -m training.build_data data/genre)", file=sys.stderr)
    return False


def validation_split(data: Path) -> tuple[list[TrainingFile], list[str]]:
    """(the validation subjects' files, every domain of the tree)."""
    files = find_training_files(data)
    _, val_files = split_by_subject(files, SPLIT.val_fraction, SPLIT.seed)
    return val_files, sorted({f.domain_name for f in files})


def draw_windows(files: list[TrainingFile], domains: list[str], patterns: tuple[str, ...],
                 factors: tuple[int, ...], count: int, seed: int, cache: SliceReader) -> list[Sample]:
    """``count`` fixed windows of ``files`` (same seed, same windows) with the given trajectories and AFs."""
    sampler = WindowSampler(files, domains, patterns, SPLIT.num_acs, SPLIT.adjacent_frames, cache)
    return fixed_validation_samples(sampler, count, factors, seed)


def trained_on_every_subject(record: dict) -> bool:
    """Whether these weights' last stage trained with no validation subjects (``--all-subjects``)."""
    return (record.get("train_config") or {}).get("val_fraction", SPLIT.val_fraction) == 0


def seen_in_training_note(record: dict) -> list[str]:
    """A line saying so when the weights trained on every subject, these windows' included."""
    if not trained_on_every_subject(record):
        return []
    return ["- These weights trained on every subject of the tree (`--all-subjects`), so these windows were "
            "seen in training: the table no longer measures held-out quality; the default ensemble was chosen "
            "with weights that had not seen them (docs/training-history.md)"]


def report_lines(title: str, command: str, notes: list[str], windows: str, rows: list[str]) -> list[str]:
    """A validation report: title, date, machine, command, one note line per weights file, the windows, the table."""
    return [f"# {title}", "",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='minutes')}",
            f"- Machine: {format_machine(machine_summary())}",
            f"- Command: `{command}`",
            "- Weights:", *notes, f"- Windows: {windows}", "", *rows, ""]


def weights_note(path: Path, extra: str = "") -> str:
    """A report's line naming a weights file by its sha256."""
    return f"  - `{path}`: sha256 `{file_sha256(path)}`{extra}"
