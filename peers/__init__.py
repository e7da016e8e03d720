"""Reconstruction methods a user might pick instead of GENRE-CMR, from their authors' own packages, wrapped as
``model.reconstruction.Reconstructor``s so that predict.py's runner, outputs and scorer serve them unchanged.

    python predict.py --method varnet [--weights runs/peers/varnet/varnet.pt] ...   # fastMRI's E2E-VarNet
    python predict.py --method sigpy-cs ...                                         # ESPIRiT + L1-wavelet CS
    venv-direct/bin/python predict.py --method vsharp ...                           # DIRECT's vSHARP

Development only: the image ships model/ and challenge/ but not this package, and neither imports it at import
time (model.reconstruction looks peers up only when asked for a method outside its own). The learned peers are
trained on the project's own windows with ``python -m peers.train``. DIRECT's vSHARP (``--method vsharp``) needs
its package, direct-recon, which requires Python >= 3.12 while the project runs 3.11: it runs from a separate 3.12
environment (docs/peers.md).
"""
import importlib
from dataclasses import dataclass
from pathlib import Path

RUNS = Path(__file__).resolve().parent.parent / "runs" / "peers"


@dataclass(frozen=True)
class Peer:
    name: str              # the predict.py --method
    module: str            # the wrapper module: build(weights, device, batch_size) -> Reconstructor
    package: str           # the authors' package it imports (requirements-dev.txt)
    learned: bool          # needs trained weights (python -m peers.train)
    description: str


PEERS = {peer.name: peer for peer in (
    Peer("varnet", "peers.varnet", "fastmri", True, "fastMRI's end-to-end variational network (E2E-VarNet)"),
    Peer("vsharp", "peers.vsharp", "direct", True, "DIRECT's vSHARP with its ACS sensitivity estimate and "
         "refinement U-Net (Python >= 3.12)"),
    Peer("sigpy-cs", "peers.sigpy_cs", "sigpy", False, "SigPy's ESPIRiT maps and L1-wavelet compressed sensing"),
)}


class PeerUnavailable(RuntimeError):
    """The authors' package of a peer is not installed (it is a development dependency)."""


def default_weights(name: str) -> Path:
    """Where ``python -m peers.train --peer NAME`` exports its weights by default."""
    return RUNS / name / f"{name}.pt"


def build_peer(name: str, weights: str | Path | None = None, device="cpu", batch_size: int = 8):
    """The Reconstructor of peer ``name``; ``weights`` (learned peers) defaults to ``default_weights(name)``.

    Raises PeerUnavailable naming the missing package, model.checkpoint.WeightsError for missing or corrupt
    weights, ValueError for an unknown name."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(PEERS)}")
    peer = PEERS[name]
    try:
        importlib.import_module(peer.package)
    except ImportError as error:
        raise PeerUnavailable(f"--method {name} needs the package {peer.package!r}, which is not installed "
                              f"({error}); it is a development dependency: make setup (README, Peers)") from error
    module = importlib.import_module(peer.module)
    chosen = Path(weights) if weights is not None else default_weights(name)
    return module.build(weights=chosen if peer.learned else None, device=device, batch_size=batch_size)
