"""benchmarks/bench_peers.py: the side-by-side speed table in a tiny mode, and the stopwatch it times networks with."""
import json

import pytest
import torch

from benchmarks.bench_peers import BEGIN, END, Stopwatch, main
from tests.test_peers import TINY_VARNET, needs


def test_stopwatch_counts_only_the_wrapped_calls_and_puts_them_back():
    network = torch.nn.Linear(3, 3)
    with Stopwatch([(network, "forward")]) as watch:
        network(torch.ones(1, 3))
        assert "forward" in vars(network)
    assert watch.seconds > 0 and "forward" not in vars(network)
    with Stopwatch([(network, "forward")]) as idle:
        pass
    assert idle.seconds == 0


@pytest.mark.slow
def test_tiny_side_by_side_run_writes_every_method_into_its_section(tmp_path, monkeypatch):
    needs("fastmri")
    needs("sigpy")
    import peers.sigpy_cs
    from peers.checkpoint import save_peer
    from peers.varnet import new_network

    monkeypatch.setattr(peers.sigpy_cs, "MAX_ITER", 5)
    save_peer(tmp_path / "weights" / "varnet" / "varnet.pt", "varnet", TINY_VARNET,
              new_network(TINY_VARNET).state_dict(), {})
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nkept\n")
    assert main(["--shapes", "24x32", "--coils", "4", "--frames", "3", "--genre", "tiny=preset:tiny",
                 "--peers", "varnet", "sigpy-cs", "--peer-weights", str(tmp_path / "weights"),
                 "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text and text.count(BEGIN) == text.count(END) == 1
    rows = json.loads((tmp_path / "work" / "bench_peers.json").read_text())
    assert [r["label"] for r in rows] == ["tiny", "varnet", "sigpy-cs"]
    for row in rows:
        assert row["images"] == 3 and row["predict_exit"] == 0
        assert 0 < row["network_s"] <= row["reconstruct_s"]
        assert f"| 24x32 | {row['label']} | 3 |" in text
