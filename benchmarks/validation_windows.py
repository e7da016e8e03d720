"""The validation subjects' windows that benchmarks.ensemble_validation and benchmarks.validation_by_domain
score: the split every training preset uses (seed 0), never the held-out evaluation trees."""
import sys
from pathlib import Path

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


def seen_in_training_note(record: dict) -> list[str]:
    """A line saying so when the weights trained on every subject, these windows' included."""
    if (record.get("train_config") or {}).get("val_fraction", SPLIT.val_fraction) > 0:
        return []
    return ["- These weights trained on every subject of the tree (`--all-subjects`), so these windows were "
            "seen in training: the table no longer measures held-out quality; the default ensemble was chosen "
            "with weights that had not seen them (docs/training-history.md)"]
