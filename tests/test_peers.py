"""The peers (peers/): each wrapper reconstructs a small multi-coil tree through predict.py's runner (w = 1), the
conventions each one translates to its authors' package, the factory's errors, and the training path."""
import dataclasses
import json
import sys

import numpy as np
import pytest
import scipy.io
import torch

import peers
import predict
from challenge.masks import make_mask
from model.checkpoint import WeightsError, save_generator
from model.classical import ZeroFilled
from model.coils import rss
from model.config import preset
from model.fftc import ifft2c
from model.generator import GenreGenerator
from model.reconstruction import DEFAULT_WEIGHTS, VolumeMeta, build_reconstructor, peer_methods
from peers.checkpoint import load_peer, save_peer
from tests.test_runner import SHAPE, expected_full_shape, write_case

# a VarNet small enough for a test; the published one is peers.varnet.HPARAMS
TINY_VARNET = {"num_cascades": 1, "sens_chans": 2, "sens_pools": 1, "chans": 4, "pools": 2}


def needs(package: str):
    return pytest.importorskip(package, reason=f"the peer's package {package!r} is not installed "
                                               f"(requirements-dev.txt / requirements-dev-nodeps.txt: make setup)")


def sigpy_cs():
    """peers.sigpy_cs (skipping the test without sigpy); tests shorten its MAX_ITER, which build() reads."""
    needs("sigpy")
    from peers import sigpy_cs as module
    return module


def tiny_varnet_weights(path):
    from peers.varnet import new_network
    torch.manual_seed(0)
    save_peer(path, "varnet", TINY_VARNET, new_network(TINY_VARNET).state_dict(), {"note": "random, tests"})
    return path


def run_predict(tmp_path, method, *extra):
    root = tmp_path / "input"
    case = write_case(root, patient="P001", seed=1)        # 2024 Task 1, Uniform 4, (3, 2, 4, 32, 40)
    out = tmp_path / "out"
    code = predict.main(["--input", str(root), "--output", str(out), "--method", method, "--device", "cpu", *extra])
    return code, json.loads((out / "run_report.json").read_text()), out / case["output"]


@pytest.mark.parametrize("method", ["varnet", "sigpy-cs"])
def test_each_peer_reconstructs_a_multicoil_tree_through_predict(tmp_path, monkeypatch, method):
    needs(peers.PEERS[method].package)
    if method == "sigpy-cs":
        monkeypatch.setattr(sigpy_cs(), "MAX_ITER", 10)       # the wrapper, not the solver's convergence
    extra = ["--weights", str(tiny_varnet_weights(tmp_path / "varnet.pt"))] if method == "varnet" else []
    code, report, output = run_predict(tmp_path, method, *extra)
    assert code == 0
    assert report["primary_method"] == method and report["files_valid"] == report["files_total"] == 1
    assert [row["method"] for row in report["files"]] == [method]          # no fallback
    image = scipy.io.loadmat(output)["img4ranking"]
    assert image.dtype == np.float32 and image.shape == expected_full_shape(SHAPE)
    assert np.isfinite(image).all() and image.any()


def test_sigpy_cs_beats_zero_filled_on_a_phantom():
    """ESPIRiT maps, FFT and mask conventions right: a nearly unregularised solve removes most of the aliasing.
    (The tuned LAMBDA trades bias for noise on realistic windows, docs/peers.md; on this clean phantom it does
    not beat zero-filled by a margin worth asserting.)"""
    module = sigpy_cs()
    from simulation.acquisition import simulate_kspace
    from simulation.phantom import phantom_series

    rng = np.random.default_rng(0)
    magnitude = phantom_series("cine", 1, 64, 64, rng)[:, None]             # (1, 1, 64, 64)
    kspace, reference = simulate_kspace(magnitude, 8, rng, snr=80.0)
    mask = make_mask("Uniform", 1, 64, 64, 4, 16, rng)
    masked = kspace * mask[:, None, None]
    meta = VolumeMeta(num_acs=16, radial=False, cyclic=False)

    def error(image):
        return np.linalg.norm(image[0, 0] - reference[0, 0]) / np.linalg.norm(reference[0, 0])
    cs = module.SigpyCS(lamda=1e-4).reconstruct(masked, mask, meta)
    zero_filled = ZeroFilled().reconstruct(masked, mask, meta)
    assert cs.shape == zero_filled.shape == (1, 1, 64, 64) and np.isfinite(cs).all()
    assert error(cs) < 0.5 * error(zero_filled), (error(cs), error(zero_filled))


def test_varnet_sees_the_project_kspace_in_fastmri_layout_odd_sizes_included():
    fastmri = needs("fastmri")
    from peers.varnet import to_fastmri

    generator = torch.Generator().manual_seed(0)
    kspace = torch.randn(2, 3, 33, 41, dtype=torch.complex64, generator=generator)
    mask = torch.rand(2, 33, 41, generator=generator) > 0.5
    masked, fastmri_mask = to_fastmri(kspace, mask)
    assert masked.shape == (2, 3, 41, 33, 2) and fastmri_mask.shape == (2, 1, 41, 33, 1)
    assert torch.equal(fastmri_mask[:, 0, :, :, 0], mask.transpose(-2, -1))
    theirs = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(masked)), dim=1).transpose(-2, -1)
    ours = rss(ifft2c(kspace * mask[:, None]))
    assert torch.allclose(theirs, ours, atol=1e-5)


def test_varnet_images_keep_the_kspace_scale():
    needs("fastmri")
    from peers.varnet import new_network, varnet_images

    torch.manual_seed(0)
    network = new_network(TINY_VARNET).eval()
    kspace = torch.randn(1, 3, 32, 40, dtype=torch.complex64)
    mask = torch.zeros(1, 32, 40, dtype=torch.bool)
    mask[:, 8:24] = True
    with torch.inference_mode():
        small, large = (varnet_images(network, kspace * s, mask, 16) for s in (1.0, 1000.0))
    assert torch.allclose(large, 1000.0 * small, rtol=1e-3, atol=1e-4 * float(large.max()))


def test_a_missing_peer_package_is_named_and_predict_falls_back(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastmri", None)           # import fastmri now raises ImportError
    with pytest.raises(peers.PeerUnavailable, match="'fastmri'"):
        build_reconstructor("varnet", device="cpu")
    code, report, _ = run_predict(tmp_path, "varnet")
    assert code == 0 and report["primary_method"] == "cgsense"
    assert any("fastmri" in note for note in report["notes"])


def test_learned_peers_take_their_own_default_weights_and_refuse_a_genre_checkpoint(tmp_path, monkeypatch):
    needs("fastmri")
    monkeypatch.setattr(peers, "RUNS", tmp_path / "runs")
    with pytest.raises(WeightsError, match="runs/varnet/varnet.pt"):
        build_reconstructor("varnet", weights=DEFAULT_WEIGHTS, device="cpu")
    genre = tmp_path / "genre.pt"
    save_generator(genre, preset("tiny"), GenreGenerator(preset("tiny")).state_dict(), {})
    with pytest.raises(WeightsError, match="not a varnet checkpoint"):
        load_peer(genre, "varnet")


def test_predict_lists_the_peers_and_the_factory_names_them_for_an_unknown_method():
    assert set(peer_methods()) == set(peers.PEERS)
    assert predict.parse_args(["--method", "sigpy-cs"]).method == "sigpy-cs"
    with pytest.raises(ValueError, match="varnet"):
        build_reconstructor("espirit-of-the-month", device="cpu")


def test_peer_training_runs_on_the_project_windows_and_exports_loadable_weights(tmp_path):
    needs("fastmri")
    from peers.train import main as train_main, train_peer
    from peers.varnet import VarNetPeer
    from tests.test_training import write_tree
    from training.config import PRESETS

    tree = write_tree(tmp_path / "tree")
    config = dataclasses.replace(PRESETS["smoke"], epochs=2, steps_per_epoch=1, val_samples=1)
    record = train_peer("varnet", config, tmp_path / "run", data=[tree], steps=2, hparams=TINY_VARNET)
    assert record["steps"] == 2 and record["epochs"] == 2 and record["selected"]["by"] == "best validation SSIM"
    assert len((tmp_path / "run" / "train_log.csv").read_text().splitlines()) == 3      # header + 2 steps
    reconstructor = VarNetPeer(tmp_path / "run" / "varnet.pt")
    assert reconstructor.record["hparams"] == TINY_VARNET
    kspace = np.ones((3, 1, 4, 24, 32), np.complex64)
    assert np.isfinite(reconstructor.reconstruct(kspace, np.ones((3, 24, 32), bool), VolumeMeta(16, False, True))).all()
    with pytest.raises(SystemExit):
        train_main(["--peer", "varnet"])                     # a budget is required


@pytest.mark.parametrize("method", ["varnet", "sigpy-cs"])
def test_reconstruct_frames_gives_the_frames_of_the_whole_slice(tmp_path, monkeypatch, method):
    needs(peers.PEERS[method].package)
    monkeypatch.setattr(sigpy_cs(), "MAX_ITER", 5)
    weights = tiny_varnet_weights(tmp_path / "varnet.pt") if method == "varnet" else None
    reconstructor = peers.build_peer(method, weights=weights)
    rng = np.random.default_rng(3)
    kspace = (rng.standard_normal((5, 4, 32, 40)) + 1j * rng.standard_normal((5, 4, 32, 40))).astype(np.complex64)
    mask = make_mask("ktUniform", 5, 32, 40, 8, 16, rng)
    meta = VolumeMeta(num_acs=16, radial=False, cyclic=True)
    whole = reconstructor.reconstruct((kspace * mask[:, None])[:, None], mask, meta)[:, 0]
    frames = reconstructor.reconstruct_frames(kspace * mask[:, None], mask, meta, [3, 1])
    assert frames.shape == (2, 32, 40)
    np.testing.assert_allclose(frames, whole[[3, 1]], rtol=1e-4, atol=1e-6 * float(whole.max()))


def test_native_eval_scores_the_peers_beside_the_baselines(tmp_path, monkeypatch):
    needs("fastmri")
    from benchmarks.native_eval import Case, evaluate, peer_reconstructor
    from simulation.acquisition import simulate_kspace
    from simulation.phantom import phantom_series

    monkeypatch.setattr(sigpy_cs(), "MAX_ITER", 5)
    rng = np.random.default_rng(0)
    kspace, _ = simulate_kspace(phantom_series("cine", 5, 32, 40, rng)[:, None], 4, rng)
    case = Case("held-out cine", "kt", "ktUniform", 8, "phantom", kspace[:, 0],
                make_mask("ktUniform", 5, 32, 40, 8, 16, rng), 2, True)
    tiny_varnet_weights(tmp_path / "peers" / "varnet" / "varnet.pt")
    varnet, weights = peer_reconstructor("varnet", tmp_path / "peers")
    assert weights == tmp_path / "peers" / "varnet" / "varnet.pt"
    rows = evaluate([case], {"varnet": varnet, "sigpy-cs": peer_reconstructor("sigpy-cs", None)[0]})
    assert [r.method for r in rows] == ["zero-filled", "CG-SENSE", "varnet", "sigpy-cs"]
    assert all(np.isfinite([r.psnr, r.ssim]).all() for r in rows)


@pytest.mark.slow
def test_predict_imports_no_peer_package_until_a_peer_is_asked_for():
    import subprocess
    from pathlib import Path

    code = ("import sys, predict; predict.parse_args(['--method', 'genre']); "
            "print(sorted(m for m in ('fastmri', 'sigpy', 'peers.varnet', 'peers.sigpy_cs') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(predict.__file__).parent, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_native_eval_needs_weights_or_peers(capsys):
    from benchmarks.native_eval import main
    assert main(["--out", "unused.md"]) == 2
    assert "give --weights, --peers or both" in capsys.readouterr().err


def test_native_eval_summary_gives_the_newest_genre_column_s_margins_over_the_peers():
    from benchmarks.native_eval import Row, format_summary
    rows = [Row("held-out cine", "kt", "ktUniform", 8, "c", method, psnr, 0.5)
            for method, psnr in (("zero-filled", 20.0), ("GENRE stage 8", 25.0), ("GENRE stage 9", 26.0),
                                 ("varnet", 24.0), ("sigpy-cs", 22.0))]
    table = format_summary(rows)
    assert "GENRE stage 9 − varnet" in table and "GENRE stage 9 − sigpy-cs" in table and "sigpy-cs − " not in table
    line = next(l for l in table.splitlines() if l.startswith("| held-out cine, every kind"))
    assert line.endswith("| +6.00 | +1.00 | +2.00 | +4.00 |")


def test_native_eval_summary_has_a_row_per_trajectory_for_the_af_8_16_target():
    from benchmarks.native_eval import Row, format_summary
    rows = [Row(group, "kt", pattern, factor, "c", method, psnr + (pattern == "ktRadial") + (factor == 24), 0.5)
            for group in ("held-out cine", "unseen centre") for pattern in ("ktUniform", "ktRadial")
            for factor in (8, 16, 24) for method, psnr in (("zero-filled", 20.0), ("GENRE stage 9", 26.0))]
    lines = {l.split(" | ")[0][2:]: l for l in format_summary(rows).splitlines()[2:]}
    assert lines["simulated, ktUniform AF 8/16"].startswith("| simulated, ktUniform AF 8/16 | 4 | 20.00 | 26.00 |")
    assert lines["simulated, ktRadial AF 8/16"].startswith("| simulated, ktRadial AF 8/16 | 4 | 21.00 | 27.00 |")
    assert lines["simulated, k-t AF 8/16"].startswith("| simulated, k-t AF 8/16 | 8 | 20.50 | 26.50 |")
    assert "simulated, ktGaussian AF 8/16" not in lines


def test_native_eval_merges_a_page_it_wrote_back_to_the_same_table(tmp_path):
    from benchmarks import native_eval
    rows = [native_eval.Row("held-out cine", "kt", "ktUniform", 8, case, method, psnr + (case == "b"), 0.5123)
            for case in ("a", "b") for method, psnr in (("zero-filled", 20.004), ("GENRE stage 9", 26.0))]
    rows.append(native_eval.Row("real k-space, TWIX phantom (2 coils)", "static", "Uniform", 4, "t", "zero-filled",
                                21.08, 0.556))
    machine = {"cpu": "x", "cores": 2, "usable_cores": 2, "memory_gib": 1, "gpu": None, "python": "3", "torch": "2"}
    page = tmp_path / "page.md"
    page.write_text("# title\n\nhand note\n\n" + native_eval.format_section(rows, "cmd", machine, {}, 1, []))
    back = native_eval.merged_rows(page)
    assert len(back) == len(rows)                                  # n cases per cell come back as n rows
    cell = [r for r in back if r.method == "GENRE stage 9"]
    assert [round(r.psnr, 2) for r in cell] == [26.5, 26.5] and cell[0].ssim == 0.512
    strip = lambda text: [l for l in text.splitlines() if l.startswith("| ")]
    assert strip(native_eval.format_section(back, "cmd", machine, {}, 1, [])) == strip(page.read_text())
    (tmp_path / "rows.json").write_text(json.dumps([dataclasses.asdict(r) for r in rows]))
    assert native_eval.merged_rows(tmp_path / "rows.json") == rows
    with pytest.raises(ValueError, match="native_eval:begin"):
        native_eval.rows_from_section("# a page without the section\n")
