"""Generator checkpoints: a .pt file of plain types and tensors, and a JSON record beside it with its sha256.

File: ``torch.save({'config': config_asdict(config), 'state_dict': {...}})``. Record: ``path.with_suffix('.json')``
holding the caller's fields plus ``file`` and ``sha256``. Loading uses ``torch.load(weights_only=True)`` and
refuses a file whose sha256 differs from its record.
"""
import hashlib
import json
import pickle
from pathlib import Path

import torch

from model.config import ConfigError, GeneratorConfig, config_asdict, config_from_dict
from model.generator import GenreGenerator
from model.interface import WeightsUnavailable


class WeightsError(WeightsUnavailable):
    """A generator checkpoint is missing, has no valid record, fails its sha256 check or does not load."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_generator(path: str | Path, config: GeneratorConfig, state_dict: dict, record: dict) -> str:
    """Write the checkpoint and its record; returns the sha256 of the .pt file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu() for key, value in state_dict.items()}
    torch.save({"config": config_asdict(config), "state_dict": tensors}, path)
    sha256 = file_sha256(path)
    fields = {**record, "file": path.name, "sha256": sha256}
    record_path(path).write_text(json.dumps(fields, indent=2, sort_keys=True, default=str) + "\n")
    return sha256


def read_record(path: str | Path) -> dict:
    """The JSON record of checkpoint ``path``; raises WeightsError when it is missing or malformed."""
    json_path = record_path(path)
    try:
        record = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{json_path}: record of the weights {path} is missing") from None
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{json_path}: unreadable weights record ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise WeightsError(f"{json_path}: weights record has no 'sha256' field")
    return record


def verified_record(path: str | Path) -> dict:
    """The record of checkpoint ``path`` once the file exists and its sha256 matches; raises WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    record = read_record(path)
    actual = file_sha256(path)
    if actual != record["sha256"]:
        raise WeightsError(f"{path}: sha256 {actual} does not match its record {record['sha256']} "
                           f"({record_path(path)}); the file is corrupt or was replaced")
    return record


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[GenreGenerator, dict]:
    """(generator in eval mode on ``device``, record). Raises WeightsError on any problem with the files."""
    path = Path(path)
    record = verified_record(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        generator = GenreGenerator(config_from_dict(checkpoint["config"]))
        generator.load_state_dict(checkpoint["state_dict"])
    except (ConfigError, KeyError, RuntimeError, TypeError, ValueError, pickle.UnpicklingError) as error:
        raise WeightsError(f"{path}: not a loadable GENRE-CMR generator checkpoint ({error})") from None
    return generator.to(device).eval(), record
