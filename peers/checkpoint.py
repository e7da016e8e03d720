"""Peer checkpoints, kept as GENRE's are (model.checkpoint): a .pt of plain types and tensors, a JSON record
beside it with its sha256, refused on a mismatch.

File: ``torch.save({'peer': name, 'hparams': {...}, 'state_dict': {...}})``."""
import json
from pathlib import Path

import torch

from model.checkpoint import WeightsError, file_sha256, record_path, verified_record


def save_peer(path: str | Path, peer: str, hparams: dict, state_dict: dict, record: dict) -> str:
    """Write the checkpoint and its record; returns the sha256 of the .pt file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu() for key, value in state_dict.items()}
    torch.save({"peer": peer, "hparams": dict(hparams), "state_dict": tensors}, path)
    sha256 = file_sha256(path)
    fields = {**record, "peer": peer, "hparams": dict(hparams), "file": path.name, "sha256": sha256}
    record_path(path).write_text(json.dumps(fields, indent=2, sort_keys=True, default=str) + "\n")
    return sha256


def load_peer(path: str | Path, peer: str) -> tuple[dict, dict, dict]:
    """(hparams, state_dict, record) of a ``peer`` checkpoint; raises WeightsError (a WeightsUnavailable: the
    runner falls back and says why) when it is missing, corrupt or another peer's."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {peer} weights not found; train them with python -m peers.train --peer {peer}")
    record = verified_record(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("peer") != peer:
        found = checkpoint.get("peer") if isinstance(checkpoint, dict) else None
        raise WeightsError(f"{path}: not a {peer} checkpoint (peer {found!r})")
    return dict(checkpoint["hparams"]), checkpoint["state_dict"], record
