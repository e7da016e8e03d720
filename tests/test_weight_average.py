"""training.average: the weighted mean of generator checkpoints, with a record naming its inputs."""
import json

import pytest
import torch

from model.checkpoint import load_generator, save_generator
from model.config import preset
from model.generator import GenreGenerator
from training.average import average_state, main as average_main


def saved_generator(path, seed, model="tiny"):
    torch.manual_seed(seed)
    config = preset(model)
    generator = GenreGenerator(config)
    sha = save_generator(path, config, generator.state_dict(), {"steps": seed})
    return generator.state_dict(), sha


def test_average_state_is_the_weighted_mean_and_keeps_equal_integer_tensors():
    a = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor([3])}
    b = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor([3])}
    out = average_state([a, b], [1.0, 3.0])
    torch.testing.assert_close(out["w"], torch.tensor([1.5, 1.0]))
    assert torch.equal(out["n"], torch.tensor([3]))
    with pytest.raises(ValueError, match="integer tensors differ"):
        average_state([a, {**b, "n": torch.tensor([4])}], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        average_state([a, b], [1.0, -1.0])


def test_cli_writes_a_loadable_average_with_its_inputs_in_the_record(tmp_path):
    first, sha_a = saved_generator(tmp_path / "a.pt", 1)
    second, sha_b = saved_generator(tmp_path / "b.pt", 2)
    assert average_main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "soup.pt")]) == 0
    generator, record = load_generator(tmp_path / "soup.pt")
    for name, value in generator.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (first[name] + second[name]) / 2, msg=name)
    assert [(s["sha256"], s["weight"]) for s in record["averaged_from"]] == [(sha_a, 1.0), (sha_b, 1.0)]
    assert "training.average" in record["command"]


def test_cli_refuses_mismatched_models_and_an_existing_output(tmp_path, capsys):
    saved_generator(tmp_path / "a.pt", 1)
    saved_generator(tmp_path / "small.pt", 2, model="small")
    assert average_main([str(tmp_path / "a.pt"), str(tmp_path / "small.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "model configuration differs" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    with pytest.raises(SystemExit):
        average_main([str(tmp_path / "a.pt"), "--out", str(tmp_path / "a.pt")])
    record = json.loads((tmp_path / "a.json").read_text())
    record["sha256"] = "0" * 64
    (tmp_path / "a.json").write_text(json.dumps(record))
    assert average_main([str(tmp_path / "a.pt"), "--out", str(tmp_path / "y.pt")]) == 2
    assert "sha256" in capsys.readouterr().err


def test_a_stage_started_from_an_average_names_the_averaged_generators(tmp_path):
    from tests.test_training import smoke_config, write_tree
    from training.trainer import Trainer
    tree = write_tree(tmp_path / "tree")
    saved_generator(tmp_path / "a.pt", 1)
    saved_generator(tmp_path / "b.pt", 2)
    assert average_main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "soup.pt")]) == 0
    trainer = Trainer(smoke_config(), tree, tmp_path / "run")
    trainer.init_generator(tmp_path / "soup.pt")
    averaged = [s["weights"] for s in trainer.init_record["averaged_from"]]
    assert averaged == [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
