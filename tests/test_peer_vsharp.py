"""peers.vsharp: DIRECT's vSHARP composed from the direct-recon package. It needs Python >= 3.12 (docs/peers.md),
so these tests skip in the project's own 3.11 environment and run in the 3.12 one:
``venv-direct/bin/python -m pytest tests/test_peer_vsharp.py``."""
import dataclasses
import json

import numpy as np
import pytest
import scipy.io
import torch

pytest.importorskip("direct", reason="direct-recon is not installed (Python >= 3.12 only, docs/peers.md)")

import peers  # noqa: E402
import predict  # noqa: E402
from challenge.masks import make_mask  # noqa: E402
from model.fftc import fft2c, ifft2c  # noqa: E402
from model.reconstruction import VolumeMeta  # noqa: E402
from peers import vsharp  # noqa: E402
from peers.checkpoint import save_peer  # noqa: E402
from tests.test_runner import SHAPE, expected_full_shape, write_case  # noqa: E402

# small enough for a test; the published size is peers.vsharp.HPARAMS
TINY = {"num_steps": 2, "num_steps_dc_gd": 2, "image_unet_num_filters": 4, "image_unet_num_pool_layers": 2,
        "initializer_channels": [4, 4, 4, 4], "initializer_dilations": [1, 1, 2, 4], "sens_filters": 4,
        "sens_pools": 1}


def tiny_weights(path, seed=0):
    torch.manual_seed(seed)
    save_peer(path, "vsharp", TINY, vsharp.new_network(TINY).state_dict(), {"note": "random, tests"})
    return path


def random_kspace(shape, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64))


def test_direct_fft_is_the_project_fft_odd_sizes_included():
    from direct.data.transforms import fft2, ifft2

    x = random_kspace((2, 3, 7, 10))
    as_complex = lambda t: torch.view_as_complex(t.contiguous())          # noqa: E731
    torch.testing.assert_close(as_complex(fft2(torch.view_as_real(x), dim=(2, 3))), fft2c(x))
    torch.testing.assert_close(as_complex(ifft2(torch.view_as_real(x), dim=(2, 3))), ifft2c(x))


def test_maps_have_unit_rss_and_one_coil_skips_the_refinement():
    network = vsharp.new_network(TINY)
    acs = torch.view_as_real(random_kspace((1, 4, 24, 20)))
    maps = network.maps(acs)
    torch.testing.assert_close(maps.pow(2).sum((-1, 1)), torch.ones(1, 24, 20))
    single = torch.view_as_real(random_kspace((1, 1, 24, 20)))
    before = network.maps(single)
    torch.nn.init.constant_(next(network.sensitivity.parameters()), 3.0)     # the refinement U-Net changes
    torch.testing.assert_close(network.maps(single), before)                 # one coil: it is not used


def test_images_keep_the_kspace_scale_and_use_the_radial_acs_square():
    network = vsharp.new_network(TINY).eval()
    kspace = random_kspace((2, 3, 24, 20), seed=1)
    mask = torch.from_numpy(make_mask("ktRadial", 2, 24, 20, 8, 16, np.random.default_rng(0)))
    with torch.inference_mode():
        image = vsharp.vsharp_images(network, kspace, mask, 16, True)
        scaled = vsharp.vsharp_images(network, 1000 * kspace, mask, 16, True)
    assert image.shape == (2, 24, 20) and torch.isfinite(image).all() and image.any()
    torch.testing.assert_close(scaled, 1000 * image, rtol=1e-3, atol=1e-3 * float(scaled.max()))


def test_vsharp_reconstructs_a_multicoil_tree_through_predict(tmp_path):
    root = tmp_path / "input"
    case = write_case(root, patient="P001", seed=1)
    out = tmp_path / "out"
    code = predict.main(["--input", str(root), "--output", str(out), "--method", "vsharp", "--device", "cpu",
                         "--weights", str(tiny_weights(tmp_path / "vsharp.pt"))])
    report = json.loads((out / "run_report.json").read_text())
    assert code == 0 and report["primary_method"] == "vsharp"
    assert [row["method"] for row in report["files"]] == ["vsharp"]        # no fallback
    image = scipy.io.loadmat(out / case["output"])["img4ranking"]
    assert image.dtype == np.float32 and image.shape == expected_full_shape(SHAPE)
    assert np.isfinite(image).all() and image.any()


def test_reconstruct_frames_gives_the_frames_of_the_whole_slice(tmp_path):
    reconstructor = peers.build_peer("vsharp", weights=tiny_weights(tmp_path / "vsharp.pt"))
    kspace = random_kspace((5, 4, 32, 40), seed=3).numpy()
    mask = make_mask("ktUniform", 5, 32, 40, 8, 16, np.random.default_rng(3))
    meta = VolumeMeta(num_acs=16, radial=False, cyclic=True)
    whole = reconstructor.reconstruct((kspace * mask[:, None])[:, None], mask, meta)[:, 0]
    frames = reconstructor.reconstruct_frames(kspace * mask[:, None], mask, meta, [3, 1])
    np.testing.assert_allclose(frames, whole[[3, 1]], rtol=1e-4, atol=1e-5 * float(whole.max()))


def test_training_follows_direct_s_warmup_and_exports_loadable_weights(tmp_path):
    from peers.train import train_peer
    from tests.test_training import write_tree
    from training.config import PRESETS

    tree = write_tree(tmp_path / "tree")
    config = dataclasses.replace(PRESETS["smoke"], epochs=2, steps_per_epoch=1, val_samples=1)
    record = train_peer("vsharp", config, tmp_path / "run", data=[tree], steps=2, hparams=TINY)
    assert record["steps"] == 2 and record["epochs"] == 2
    losses = [float(line.split(",")[4]) for line in (tmp_path / "run" / "train_log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 2 and np.isfinite(losses).all() and min(losses) > 0
    optimiser = vsharp.optimiser(torch.nn.Linear(1, 1).parameters())
    schedule = vsharp.scheduler(optimiser)
    for _ in range(10):
        optimiser.step()
        schedule.step()
    # linear warm-up from 0.1% of lr 5e-3 over DIRECT's 2000 iterations
    expected = vsharp.LEARNING_RATE * (0.001 * (1 - 10 / 2000) + 10 / 2000)
    assert optimiser.param_groups[0]["lr"] == pytest.approx(expected)
    reconstructor = peers.build_peer("vsharp", weights=tmp_path / "run" / "vsharp.pt")
    kspace = np.ones((3, 1, 4, 24, 32), np.complex64)
    assert np.isfinite(reconstructor.reconstruct(kspace, np.ones((3, 24, 32), bool),
                                                 VolumeMeta(16, False, True))).all()
