"""Training: tree reading, window samples, the adversarial loop, logs, resume, determinism, DDP, export."""
import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from challenge.matio import write_kspace_v73
from model import config as model_config
from model.checkpoint import load_generator, save_generator
from model.fftc import fft2c
from model.reflection import reflect
from training.__main__ import build_config, parse_args
from training.__main__ import main as train_main
from training.config import PRESETS, TrainConfig
from training.dataset import WindowSampler, domain_probabilities, split_by_subject
from training.growth import deepened_state, widened_state
from training.layouts import find_training_files
from training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
DOMAINS = [("Center001", "Vendor", "Cine", "cine_sax"), ("Center002", "Vendor", "Cine", "cine_lax"),
           ("Phantom", "Simulated", "Mapping", "T1map")]


def smooth_series(rng, nt, ny, nx):
    y, x = np.mgrid[:ny, :nx]
    frames = []
    for t in range(nt):
        radius = 5 + 2 * np.sin(2 * np.pi * t / nt)
        blob = ((y - ny / 2) ** 2 + (x - nx / 2) ** 2 < radius ** 2).astype(np.float32)
        frames.append(0.3 + blob + 0.05 * rng.standard_normal((ny, nx)).astype(np.float32))
    return np.stack(frames)


def write_tree(root: Path, nt=6, ny=24, nx=32, coils=4, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:ny, :nx] / max(ny, nx)
    maps = np.stack([np.exp(-((y - cy) ** 2 + (x - cx) ** 2) * 4) * np.exp(1j * c)
                     for c, (cy, cx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)][:coils])])
    for center, vendor, modality, base in DOMAINS:
        for patient in ("P001", "P002", "P003"):
            image = smooth_series(rng, nt, ny, nx)
            coil_images = image[:, None, None] * maps[None, None]          # (nt, 1, nc, ny, nx)
            kspace = fft2c(torch.from_numpy(coil_images.astype(np.complex64))).numpy()
            path = root / "MultiCoil" / modality / "TrainingSet" / "FullSample" / center / vendor / patient
            write_kspace_v73(path / f"{base}.mat", "kspace_full", kspace)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("train_tree"))


def smoke_config(**changes):
    base = dataclasses.replace(PRESETS["smoke"], epochs=1, steps_per_epoch=3, val_samples=2, log_every=1)
    return dataclasses.replace(base, **changes)


def test_tree_is_read_with_domains_and_subject_split(tree):
    files = find_training_files(tree)
    assert len(files) == 9
    assert {f.domain_name for f in files} == {"Center001:Cine", "Center002:Cine", "Phantom:Mapping"}
    train, val = split_by_subject(files, 0.34, seed=0)
    assert {f.subject for f in train}.isdisjoint({f.subject for f in val})
    assert val and len(train) + len(val) == len(files)
    assert {f.domain_name for f in train} == {f.domain_name for f in files}


@pytest.mark.parametrize("pattern", ["ktUniform", "ktGaussian", "ktRadial"])
def test_window_sample_is_masked_normalised_and_centred(tree, pattern):
    files = find_training_files(tree)
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), (pattern,), num_acs=8)
    sample = sampler.draw(np.random.default_rng(1), (8,))
    assert sample.masked_kspace.shape == (1, 5, 4, 24, 32)
    assert sample.mask.shape == (1, 5, 1, 24, 32)
    # undersampled k-space is zero exactly where the mask is
    assert torch.all(sample.masked_kspace[sample.mask.expand_as(sample.masked_kspace) == 0] == 0)
    assert sample.radial == (pattern == "ktRadial")
    assert sample.target.shape == (1, 24, 32)
    assert float(sample.data_range) >= float(sample.target.max()) * (1 - 1e-6)


def test_training_steps_log_every_loss_and_cov_weight(tree, tmp_path):
    trainer = Trainer(smoke_config(), tree, tmp_path)
    result = trainer.fit()
    rows = list(csv.DictReader(open(tmp_path / "train_log.csv")))
    assert len(rows) == 3
    for name in ("image", "kspace", "ssim", "ear", "sda", "adv"):
        assert f"loss_{name}" in rows[0] and f"w_{name}" in rows[0]
    for row in rows:
        weights = [float(row[f"w_{n}"]) for n in ("image", "kspace", "ssim", "ear", "sda", "adv")]
        assert abs(sum(weights) - 1) < 1e-5
        assert np.isfinite(float(row["total"]))
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert all(0 < h["val_ssim"] <= 1 for h in history)
    assert result["steps"] == 3


def test_ablation_switches_remove_their_terms(tree, tmp_path):
    trainer = Trainer(smoke_config(use_ear=False, use_sda=False, use_adv=False, residual=False), tree, tmp_path)
    assert trainer.cov.names == ("image", "kspace", "ssim")
    assert trainer.model_config.residual is False
    assert not any("residual" in name for name, _ in trainer.g_module.named_parameters())
    trainer.fit()
    header = open(tmp_path / "train_log.csv").readline()
    assert "loss_ear" not in header and "loss_adv" not in header


def test_adv_weight_scales_only_the_adversarial_term(tree, tmp_path):
    trainers = [Trainer(smoke_config(adv_weight=w), tree, tmp_path / str(w)) for w in (1.0, 0.1)]
    sample = trainers[0].val_samples[0]
    output = trainers[0].g_module(sample.masked_kspace, sample.mask, trainers[0].config.num_acs, sample.radial)
    logits = lambda image: trainers[0].d_module(image[:, None])   # noqa: E731 - one shared discriminator
    full, scaled = (t.generator_losses(sample, output, logits) for t in trainers)
    torch.testing.assert_close(scaled["adv"], 0.1 * full["adv"])
    for name in ("image", "kspace", "ssim", "ear"):
        torch.testing.assert_close(scaled[name], full[name])


def test_same_seed_same_run_and_resume_continues_identically(tree, tmp_path):
    config = smoke_config(epochs=2, steps_per_epoch=2)
    straight = Trainer(config, tree, tmp_path / "a")
    straight.fit()
    again = Trainer(config, tree, tmp_path / "b")
    again.fit()
    first = Trainer(dataclasses.replace(config, epochs=1), tree, tmp_path / "c")
    first.fit()
    resumed = Trainer(config, tree, tmp_path / "c")
    resumed.load_checkpoint(tmp_path / "c" / "last.pt")
    resumed.fit()
    for other in (again, resumed):
        for (name, a), (_, b) in zip(straight.g_module.state_dict().items(), other.g_module.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed.step == straight.step == 4


def test_export_writes_loadable_weights_with_record(tree, tmp_path):
    trainer = Trainer(smoke_config(), tree, tmp_path)
    trainer.fit()
    sha = trainer.export_generator(tmp_path / "genre.pt", best=False)
    generator, record = load_generator(tmp_path / "genre.pt")
    assert record["sha256"] == sha
    assert record["steps"] == 3 and record["seed"] == 0 and record["data"]["files"] == 9
    assert record["validation"][-1]["epoch"] == 1 and record["selected"]["by"] == "last epoch"
    assert record["finished_utc"].endswith("+00:00") and record["init_from"] is None
    for (name, a), (_, b) in zip(trainer.g_module.state_dict().items(), generator.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


def test_export_ships_the_epoch_with_the_best_validation_ssim(tree, tmp_path):
    trainer = Trainer(smoke_config(epochs=3, steps_per_epoch=2), tree, tmp_path)
    trainer.fit()
    best_epoch = max(trainer.history[1:], key=lambda h: h["val_ssim"])["epoch"]
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert int(saved["epoch"]) == best_epoch
    trainer.export_generator(tmp_path / "genre.pt")
    generator, record = load_generator(tmp_path / "genre.pt")
    assert record["selected"] == {"epoch": best_epoch, "by": "best validation SSIM",
                                  "val_ssim": pytest.approx(saved["val_ssim"]),
                                  "val_psnr": pytest.approx(saved["val_psnr"])}
    for (name, a), (_, b) in zip(saved["generator"].items(), generator.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


def test_adv_cap_caps_the_adversarial_weight_of_a_run_and_its_cli_checks_the_range(tree, tmp_path, capsys):
    trainer = Trainer(smoke_config(adv_cap=0.05, steps_per_epoch=6, epochs=1), tree, tmp_path / "run")
    trainer.fit()
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert max(float(row["w_adv"]) for row in rows) == pytest.approx(0.05)   # the first steps' 1/K is above it
    assert all(abs(sum(float(row[f"w_{n}"]) for n in ("image", "kspace", "ssim", "ear", "sda", "adv")) - 1) < 1e-5
               for row in rows)
    assert build_config(parse_args(["--run-dir", "r", "--adv-cap", "0.03"])).adv_cap == 0.03
    assert build_config(parse_args(["--run-dir", "r"])).adv_cap == 0.0
    assert train_main(["--run-dir", str(tmp_path / "bad"), "--preset", "smoke", "--data", str(tree),
                       "--adv-cap", "1.5"]) == 2
    assert "--adv-cap must lie in (0, 1]" in capsys.readouterr().err


def test_a_second_stage_starts_from_exported_weights_and_records_them(tree, tmp_path):
    first = Trainer(smoke_config(), tree, tmp_path / "first")
    first.fit()
    sha = first.export_generator(tmp_path / "stage1.pt", best=False)
    second = Trainer(smoke_config(seed=0), tree, tmp_path / "second")
    second.init_generator(tmp_path / "stage1.pt")
    for (name, a), (_, b) in zip(first.g_module.state_dict().items(), second.g_module.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    second.fit()
    second.export_generator(tmp_path / "stage2.pt", best=False)
    record = load_generator(tmp_path / "stage2.pt")[1]
    assert record["init_from"]["sha256"] == sha and record["init_from"]["steps"] == 3

    other_model = Trainer(smoke_config(model="small"), tree, tmp_path / "other")
    with pytest.raises(ValueError, match="model configuration differs"):
        other_model.init_generator(tmp_path / "stage1.pt")


def test_a_draw_seed_draws_new_windows_on_the_same_split(tree, tmp_path):
    trainers = {name: Trainer(smoke_config(**changes), tree, tmp_path / name)
                for name, changes in (("plain", {}), ("same", {"draw_seed": 0}), ("new", {"draw_seed": 7}))}
    windows = {name: [s.target for s in t.epoch_windows((8,))] for name, t in trainers.items()}
    for name in ("same", "new"):
        assert trainers[name].data_summary == trainers["plain"].data_summary
        for a, b in zip(trainers[name].val_samples, trainers["plain"].val_samples, strict=True):
            torch.testing.assert_close(a.target, b.target)
    for a, b in zip(windows["same"], windows["plain"], strict=True):
        torch.testing.assert_close(a, b)
    assert not any(a.shape == b.shape and torch.equal(a, b) for a, b in zip(windows["new"], windows["plain"]))


@pytest.mark.slow
def test_torchrun_ddp_two_processes_on_cpu(tree, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_port", "29531", "-m", "training", "--data", str(tree), "--run-dir", str(tmp_path), "--preset", "smoke",
               "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--workers", "1"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "train_log.csv")))
    assert len(rows) == 2                       # only rank 0 logs
    assert (tmp_path / "last.pt").exists()


def test_window_sample_carries_the_slice_average_of_its_masks(tree):
    files = find_training_files(tree)
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform",), num_acs=8)
    sample = sampler.draw(np.random.default_rng(3), (8,))
    assert sample.shared_kspace.shape == (1, 4, 24, 32)
    # every location measured by the window is measured in the slice, so the average is non-zero there
    measured = sample.mask.amax(dim=(0, 1, 2)) > 0
    assert torch.all(sample.shared_kspace[0, :, measured].abs() > 0)


def test_a_view_sharing_stage_starts_from_plain_weights(tree, tmp_path):
    first = Trainer(smoke_config(model="small"), tree, tmp_path / "first")
    first.fit()
    first.export_generator(tmp_path / "plain.pt", best=False)
    sharing = Trainer(smoke_config(model="small-view-sharing"), tree, tmp_path / "sharing")
    sharing.init_generator(tmp_path / "plain.pt")
    assert sharing.model_config.view_sharing
    for (name, a), (_, b) in zip(first.g_module.state_dict().items(), sharing.g_module.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    sharing.fit()
    assert all(0 < h["val_ssim"] <= 1 for h in sharing.history)


def test_deepened_state_appends_independent_copies_of_the_last_cascade():
    state = {"sens_net.w": torch.zeros(2), "cascades.0.eta": torch.tensor(1.0), "cascades.1.eta": torch.tensor(2.0)}
    deeper = deepened_state(state, 2, 4)
    assert [float(deeper[f"cascades.{i}.eta"]) for i in range(4)] == [1.0, 2.0, 2.0, 2.0]
    deeper["cascades.3.eta"] += 1
    assert float(deeper["cascades.2.eta"]) == 2.0 and float(state["cascades.1.eta"]) == 2.0
    with pytest.raises(ValueError, match="cannot deepen 2 cascades to 1"):
        deepened_state(state, 2, 1)


def test_deepened_state_gates_only_the_appended_cascades_and_shuts_them():
    state = {"cascades.0.eta": torch.tensor(1.0), "cascades.1.eta": torch.tensor(2.0)}
    deeper = deepened_state(state, 2, 4, gated_from=2)
    assert [float(deeper[f"cascades.{i}.gate"]) for i in (2, 3)] == [0.0, 0.0]
    assert "cascades.0.gate" not in deeper and "cascades.1.gate" not in deeper
    # a gated source keeps its gates; its last cascade's copies start shut, not as open as their original
    gated = {**deeper, "cascades.3.gate": torch.tensor(0.7)}
    deepest = deepened_state(gated, 4, 5, gated_from=2)
    assert float(deepest["cascades.3.gate"]) == pytest.approx(0.7) and float(deepest["cascades.4.gate"]) == 0.0


def test_a_gated_deeper_stage_starts_as_the_shallower_generator_and_opens_its_gates(tree, tmp_path, monkeypatch):
    monkeypatch.setitem(model_config.PRESETS, "small-7-gated-view-sharing",
                        dataclasses.replace(model_config.PRESETS["small-view-sharing"], cascades=7, gated_from=5))
    shallow = Trainer(smoke_config(model="small-view-sharing"), tree, tmp_path / "shallow")
    save_generator(tmp_path / "small.pt", shallow.model_config, shallow.g_module.state_dict(), {})
    config = smoke_config(model="small-7-gated-view-sharing", lr=1e-4, gated_lr=1e-3, gate_lr=0.02)
    deep = Trainer(config, tree, tmp_path / "deep")
    deep.init_generator(tmp_path / "small.pt")
    sample = shallow.val_samples[0]
    with torch.no_grad():
        before = shallow.g_module.eval()(sample.masked_kspace, sample.mask, 8, sample.radial, sample.shared_kspace)
        after = deep.g_module.eval()(sample.masked_kspace, sample.mask, 8, sample.radial, sample.shared_kspace)
    torch.testing.assert_close(after.image, before.image)
    groups = {(group["lr"], group["weight_decay"], len(group["params"])) for group in deep.opt_g.param_groups}
    gated_params = sum(1 for name, _ in deep.g_module.named_parameters()
                       if name.startswith(("cascades.5.", "cascades.6.")) and not name.endswith(".gate"))
    assert (1e-3, config.weight_decay, gated_params) in groups and (0.02, 0.0, 2) in groups
    deep.fit()
    gates = [float(deep.g_module.cascades[i].gate.detach()) for i in (5, 6)]
    assert all(gate != 0.0 for gate in gates)
    # gates may be added only to appended cascades: gating trained ones would change what they compute
    monkeypatch.setitem(model_config.PRESETS, "small-7-gated-early",
                        dataclasses.replace(model_config.PRESETS["small-view-sharing"], cascades=7, gated_from=3))
    with pytest.raises(ValueError, match="model configuration differs"):
        Trainer(smoke_config(model="small-7-gated-early"), tree, tmp_path / "early").init_generator(
            tmp_path / "small.pt")


def test_a_deeper_stage_keeps_the_trained_cascades_and_copies_the_last(tree, tmp_path):
    shallow = Trainer(smoke_config(model="small-view-sharing"), tree, tmp_path / "shallow")
    save_generator(tmp_path / "small.pt", shallow.model_config, shallow.g_module.state_dict(), {})
    deep = Trainer(smoke_config(model="small-8-view-sharing"), tree, tmp_path / "deep")
    deep.init_generator(tmp_path / "small.pt")
    source, deeper = shallow.g_module.eval(), deep.g_module.eval()
    sample = shallow.val_samples[0]
    with torch.no_grad():
        before = source(sample.masked_kspace, sample.mask, 8, sample.radial, sample.shared_kspace)
        after = deeper(sample.masked_kspace, sample.mask, 8, sample.radial, sample.shared_kspace)
    # the first five cascades compute what they computed before; three more refine their result
    assert len(after.cascade_images) == 8
    for a, b in zip(before.cascade_images, after.cascade_images[:5]):
        torch.testing.assert_close(a, b)
    for index in (5, 6, 7):
        for (name, a), (_, b) in zip(source.cascades[4].state_dict().items(),
                                     deeper.cascades[index].state_dict().items()):
            torch.testing.assert_close(a, b, msg=name)
    save_generator(tmp_path / "deep.pt", deep.model_config, deep.g_module.state_dict(), {})
    with pytest.raises(ValueError, match="model configuration differs"):
        shallow.init_generator(tmp_path / "deep.pt")


def _wider(unet: model_config.UnetConfig) -> model_config.UnetConfig:
    return dataclasses.replace(unet, n_feat0=unet.n_feat0 + 4, feature_dim=tuple(c + 4 for c in unet.feature_dim),
                               prompt_dim=tuple(c + 2 for c in unet.prompt_dim))


def test_widened_state_keeps_the_output_and_lets_the_zeroed_weights_learn():
    from model.generator import GenreGenerator
    torch.manual_seed(0)
    source_config = model_config.PRESETS["tiny"]
    target_config = dataclasses.replace(source_config, denoiser=_wider(source_config.denoiser))
    narrow, wide = GenreGenerator(source_config), GenreGenerator(target_config)
    with torch.no_grad():   # shipped residual convs are trained, not the zeros they start at
        for name, parameter in narrow.named_parameters():
            if ".residual." in name:
                parameter.normal_(std=0.1)
    wide.load_state_dict(widened_state(narrow.state_dict(), wide.state_dict(), source_config.denoiser,
                                       target_config.denoiser))
    kspace = torch.randn(1, 5, 3, 24, 20, dtype=torch.complex64)
    mask = torch.zeros(1, 5, 1, 24, 20)
    mask[..., ::3, :] = 1
    mask[..., 10:14, :] = 1
    kspace = kspace * mask
    with torch.no_grad():
        before = narrow.eval()(kspace, mask, 4, False).image
        after = wide.eval()(kspace, mask, 4, False).image
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5 * float(before.abs().max()))
    # the weights from new channels into old ones start at zero but are trained from the first step
    wide.train()(kspace, mask, 4, False).image.abs().sum().backward()
    c3, pd2 = source_config.denoiser.feature_dim[2], source_config.denoiser.prompt_dim[2]
    reduce = wide.cascades[0].denoiser.unet.dec3.reduce.weight
    wide_c3 = target_config.denoiser.feature_dim[2]
    assert reduce.detach()[:c3, c3:wide_c3].abs().sum() == 0 and reduce.grad[:c3, c3:wide_c3].abs().sum() > 0
    # the prompt segment of the concatenated [x, prompt] input keeps its source channels behind the widened x
    source_reduce = narrow.cascades[0].denoiser.unet.dec3.reduce.weight.detach()
    torch.testing.assert_close(reduce.detach()[:c3, wide_c3:wide_c3 + pd2], source_reduce[:, c3:])
    with pytest.raises(ValueError, match="cannot narrow"):
        widened_state(wide.state_dict(), narrow.state_dict(), target_config.denoiser, source_config.denoiser)
    with pytest.raises(ValueError, match="only the denoisers' widths"):
        widened_state(narrow.state_dict(), wide.state_dict(), source_config.denoiser,
                      dataclasses.replace(target_config.denoiser, prompt_len=(4, 4, 4)))


def test_a_wider_stage_starts_as_the_narrower_generator(tree, tmp_path, monkeypatch):
    narrow_config = model_config.PRESETS["small-view-sharing"]
    monkeypatch.setitem(model_config.PRESETS, "small-wide-view-sharing",
                        dataclasses.replace(narrow_config, denoiser=_wider(narrow_config.denoiser)))
    narrow = Trainer(smoke_config(model="small-view-sharing"), tree, tmp_path / "narrow")
    save_generator(tmp_path / "small.pt", narrow.model_config, narrow.g_module.state_dict(), {})
    wide = Trainer(smoke_config(model="small-wide-view-sharing"), tree, tmp_path / "wide")
    wide.init_generator(tmp_path / "small.pt")
    sample = narrow.val_samples[0]
    with torch.no_grad():
        before = narrow.g_module.eval()(sample.masked_kspace, sample.mask, 8, sample.radial, sample.shared_kspace)
        after = wide.g_module.eval()(sample.masked_kspace, sample.mask, 8, sample.radial, sample.shared_kspace)
    torch.testing.assert_close(after.image, before.image, rtol=1e-5, atol=1e-5 * float(before.image.abs().max()))
    # siblings (other draw seeds, same seed) start from the same widened generator
    sibling = Trainer(smoke_config(model="small-wide-view-sharing", draw_seed=7), tree, tmp_path / "sibling")
    sibling.init_generator(tmp_path / "small.pt")
    for (name, a), (_, b) in zip(wide.g_module.state_dict().items(), sibling.g_module.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    wide.fit()
    assert all(0 < h["val_ssim"] <= 1 for h in wide.history)
    # a narrower run cannot start from the wider checkpoint
    save_generator(tmp_path / "wide.pt", wide.model_config, wide.g_module.state_dict(), {})
    with pytest.raises(ValueError, match="cannot narrow"):
        narrow.init_generator(tmp_path / "wide.pt")


def test_centre_weights_set_how_often_each_domain_is_drawn(tree):
    files = find_training_files(tree)
    domains = sorted({f.domain_name for f in files})
    assert domains[2] == "Phantom:Mapping"
    np.testing.assert_allclose(domain_probabilities(domains, {"Phantom": 0.5}), [0.4, 0.4, 0.2])
    with pytest.raises(ValueError, match="no domain"):
        domain_probabilities(domains, {"Center001": 0, "Center002": 0, "Phantom": 0})
    sampler = WindowSampler(files, domains, ("ktUniform",), num_acs=8, centre_weights={"Phantom": 0.1})
    rng = np.random.default_rng(0)
    drawn = [sampler.draw(rng, (8,)).domain for _ in range(150)]
    share = drawn.count(2) / len(drawn)           # expected 0.1 / 2.1 = 0.048 against 1/3 when balanced
    assert share < 0.15 and drawn.count(0) > 40 and drawn.count(1) > 40


def test_centre_weights_survive_the_checkpoint_record():
    config = PRESETS["cpu"]
    assert dict(config.centre_weights) == {"Phantom": 0.25}
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    older = {k: v for k, v in config.to_dict().items() if k != "centre_weights"}   # records before the field
    assert TrainConfig.from_dict(older).centre_weights == ()


def test_reflect_augment_survives_the_checkpoint_record_and_older_records_load_without_it():
    config = PRESETS["cpu"]
    assert config.reflect_augment
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    older = {k: v for k, v in config.to_dict().items() if k != "reflect_augment"}
    assert TrainConfig.from_dict(older).reflect_augment is False


def test_reflect_augment_draws_the_same_window_reflected_along_ny_nx_or_both(tree):
    files = find_training_files(tree)
    domains = sorted({f.domain_name for f in files})
    plain = WindowSampler(files, domains, ("ktUniform",), num_acs=8)
    augmented = WindowSampler(files, domains, ("ktUniform",), num_acs=8, reflect_augment=True)
    drawn = []
    for seed in range(16):
        # same seed, same window; the scale follows the mask, which differs, so compare peak-normalised images
        a = plain.draw(np.random.default_rng(seed), (8,)).target
        b = augmented.draw(np.random.default_rng(seed), (8,))
        assert torch.all(b.masked_kspace[b.mask.expand_as(b.masked_kspace) == 0] == 0)
        a, target = a / a.amax(), b.target / b.target.amax()
        matches = [dims for dims in ((), (-1,), (-2,), (-2, -1))
                   if torch.allclose(reflect(a, dims), target, atol=1e-5)]
        assert len(matches) == 1, f"seed {seed}: the augmented window is no reflection of the plain one"
        drawn.append(matches[0])
    assert set(drawn) == {(), (-1,), (-2,), (-2, -1)}


def test_reflect_augment_leaves_the_validation_windows_alone(tree, tmp_path):
    plain = Trainer(smoke_config(), tree, tmp_path / "plain")
    augmented = Trainer(smoke_config(reflect_augment=True), tree, tmp_path / "augmented")
    assert augmented.train_sampler.reflect_augment and not plain.train_sampler.reflect_augment
    for a, b in zip(plain.val_samples, augmented.val_samples, strict=True):
        assert torch.equal(a.target, b.target) and torch.equal(a.mask, b.mask)


def test_the_cli_exports_the_last_epoch_when_no_subject_is_held_for_validation(tree, tmp_path):
    train_main(["--data", str(tree), "--run-dir", str(tmp_path / "run"), "--preset", "smoke", "--epochs", "1",
                "--steps-per-epoch", "1", "--all-subjects", "--device", "cpu", "--export", str(tmp_path / "g.pt")])
    record = load_generator(tmp_path / "g.pt")[1]
    assert record["selected"]["by"] == "last epoch" and record["train_config"]["val_fraction"] == 0
    assert record["data"]["train_files"] == 9 and record["data"]["val_files"] == 0


def test_a_one_domain_tree_trains_without_sda_and_says_why_it_needs_it(tmp_path):
    import shutil
    root = write_tree(tmp_path / "tree")
    for folder in (root / "MultiCoil").rglob("Center002"):
        shutil.rmtree(folder)
    shutil.rmtree(root / "MultiCoil" / "Mapping")
    trainer = Trainer(smoke_config(use_sda=False, steps_per_epoch=1), root, tmp_path / "run")
    assert len(trainer.domains) == 1 and trainer.sda is None
    trainer.fit()
    trainer.save_checkpoint(tmp_path / "run" / "again.pt")
    trainer.load_checkpoint(tmp_path / "run" / "again.pt")
    with pytest.raises(ValueError, match="--no-sda"):
        Trainer(smoke_config(), root, tmp_path / "run2")


def test_ema_follows_the_weights_and_is_what_validation_scores_and_export_writes(tree, tmp_path):
    trainer = Trainer(smoke_config(epochs=1, steps_per_epoch=2, ema_decay=0.5), tree, tmp_path)
    start = {k: v.clone() for k, v in trainer.g_module.state_dict().items()}
    expected = {k: v.clone() for k, v in start.items()}
    original_update = trainer.ema.update

    def update_and_track(module):
        original_update(module)
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                expected[name] = 0.5 * expected[name] + 0.5 * value
    trainer.ema.update = update_and_track
    trainer.fit()
    averaged, raw = trainer.ema.module.state_dict(), trainer.g_module.state_dict()
    moved = [n for n, v in raw.items() if v.is_floating_point() and not torch.equal(v, start[n])]
    assert moved, "training changed no weight"
    for name in moved:
        torch.testing.assert_close(averaged[name], expected[name], msg=name)
        assert not torch.equal(averaged[name], raw[name]), name
    trainer.export_generator(tmp_path / "genre.pt", best=False)
    generator, record = load_generator(tmp_path / "genre.pt")
    assert record["train_config"]["ema_decay"] == 0.5
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(value, averaged[name], msg=name)
    assert trainer.history[-1]["val_ssim"] == pytest.approx(trainer.validate()["val_ssim"])


def test_ema_restarts_at_the_weights_a_stage_starts_from_and_survives_resume(tree, tmp_path):
    first = Trainer(smoke_config(), tree, tmp_path / "first")
    first.fit()
    first.export_generator(tmp_path / "stage1.pt", best=False)
    second = Trainer(smoke_config(ema_decay=0.9), tree, tmp_path / "second")
    second.init_generator(tmp_path / "stage1.pt")
    for name, value in first.g_module.state_dict().items():
        torch.testing.assert_close(second.ema.module.state_dict()[name], value, msg=name)
    second.fit()
    resumed = Trainer(smoke_config(ema_decay=0.9), tree, tmp_path / "second")
    resumed.load_checkpoint(tmp_path / "second" / "last.pt")
    for name, value in second.ema.module.state_dict().items():
        torch.testing.assert_close(resumed.ema.module.state_dict()[name], value, msg=name)
    with pytest.raises(ValueError, match="decay"):
        Trainer(smoke_config(ema_decay=1.0), tree, tmp_path / "bad")


def test_the_cli_lr_step_flag_overrides_the_preset_and_rejects_zero(tmp_path, capsys):
    from training.__main__ import build_config, parse_args
    assert build_config(parse_args(["--run-dir", "r", "--lr-step-epochs", "100"])).lr_step_epochs == 100
    assert build_config(parse_args(["--run-dir", "r"])).lr_step_epochs == PRESETS["cpu"].lr_step_epochs
    assert train_main(["--run-dir", str(tmp_path / "r"), "--lr-step-epochs", "0"]) == 2
    assert "--lr-step-epochs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_cli_ema_flag_sets_the_decay_and_the_default_keeps_none():
    from training.__main__ import build_config, parse_args
    assert build_config(parse_args(["--run-dir", "r", "--ema", "0.998"])).ema_decay == 0.998
    assert build_config(parse_args(["--run-dir", "r"])).ema_decay == 0.0
    assert TrainConfig.from_dict({k: v for k, v in PRESETS["cpu"].to_dict().items() if k != "ema_decay"}).ema_decay == 0


def test_export_command_writes_a_stopped_runs_moving_average_with_the_checkpoints_own_config(tree, tmp_path, capsys):
    from training.export import main as export_main
    trainer = Trainer(smoke_config(epochs=1, steps_per_epoch=2, ema_decay=0.5), tree, tmp_path / "run")
    trainer.fit()
    averaged = trainer.ema.module.state_dict()
    assert export_main([str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "g.pt"),
                        "--data", str(tree)]) == 0
    generator, record = load_generator(tmp_path / "g.pt")
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(value, averaged[name], msg=name)
    assert TrainConfig.from_dict(record["train_config"]) == trainer.config and record["steps"] == 2
    assert record["selected"]["by"] == "last epoch" and record["exported_from"]["step"] == 2
    assert record["command"].startswith("python -m training.export ")
    with pytest.raises(SystemExit):         # an existing weights file is never overwritten
        export_main([str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "g.pt"), "--data", str(tree)])
    assert load_generator(tmp_path / "g.pt")[1]["sha256"] == record["sha256"]
    # a run on files needs its trees; a file that is no checkpoint, or no best epoch, is refused by name
    assert export_main([str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "h.pt")]) == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "h.pt").exists()
    assert export_main([str(tmp_path / "g.pt"), "--out", str(tmp_path / "h.pt")]) == 2
    assert "g.pt: not a training checkpoint" in capsys.readouterr().err
    (tmp_path / "run" / "best.pt").unlink(missing_ok=True)
    assert export_main([str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "h.pt"), "--best"]) == 2
    assert "best.pt" in capsys.readouterr().err
