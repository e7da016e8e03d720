"""challenge.smoke_gate: `make smoke` passes only with w = 1 per year and a PSNR lead over the better fall-back."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io

from challenge import smoke_gate

FILES = ["Cine/TestSet/Task1/P001/cine_sax_kus_Uniform4.mat", "Cine/TestSet/Task1/P002/cine_sax_kus_Uniform4.mat"]


def _image(seed: int) -> np.ndarray:
    """(nx, ny, nz, nt) smooth images: PSNR differences below come from the added noise only."""
    y, x = np.mgrid[0:32, 0:24]
    frames = [np.exp(-((x - 12 - k) ** 2 + (y - 16) ** 2) / (40.0 + seed)) for k in range(6)]
    return np.stack(frames, axis=-1).reshape(32, 24, 2, 3).astype(np.float32)


def _tree(root: Path, noise: float | None, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i, name in enumerate(FILES):
        image = _image(i)
        if noise:
            image = np.abs(image + noise * rng.standard_normal(image.shape)).astype(np.float32)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / name, {"img4ranking": image})


def _sample(tmp_path: Path, recon_noise: float, zerofilled_noise: float = 0.1,
            cgsense_noise: float = 0.2) -> tuple[Path, Path]:
    sample, out = tmp_path / "sample", tmp_path / "out"
    _tree(sample / "2024" / "gt_full", None)
    _tree(out / "2024", recon_noise, seed=1)
    _tree(out / "zerofilled" / "2024", zerofilled_noise, seed=2)
    _tree(out / "cgsense" / "2024", cgsense_noise, seed=3)
    return sample, out


def _run(sample: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    code = smoke_gate.main(["--sample", str(sample), "--out", str(out), "--years", "2024", *extra])
    return code, capsys.readouterr().out.strip().splitlines()[-1]


def _judge(sample: Path, out: Path) -> smoke_gate.YearVerdict:
    roots = {name: out / name / "2024" for name in smoke_gate.FALLBACK_METHODS}
    return smoke_gate.judge_year(sample / "2024" / "gt_full", out / "2024", roots, 2024)


def test_passes_with_every_file_and_a_lead_above_the_margin(tmp_path, capsys):
    sample, out = _sample(tmp_path, recon_noise=0.01)     # 20 dB less noise power than zero-filled
    code, last = _run(sample, out, capsys)
    assert code == 0 and last.startswith("smoke: PASS") and "2024 +" in last and "over zerofilled" in last
    assert json.loads((out / "score_2024.json").read_text())["overall"]["num_valid"] == len(FILES)


def test_fails_below_the_margin(tmp_path, capsys):
    sample, out = _sample(tmp_path, recon_noise=0.09)
    verdict = _judge(sample, out)
    assert verdict.best_fallback[0] == "zerofilled" and 0 < verdict.lead_db < smoke_gate.MARGIN_DB
    code, last = _run(sample, out, capsys)
    assert code == 1 and last.startswith("smoke: FAIL (2024)") and "below the 1 dB margin" in last
    # The same outputs pass a margin they meet.
    code, last = _run(sample, out, capsys, "--margin-db", f"{verdict.lead_db - 0.1:.2f}")
    assert code == 0 and last.startswith("smoke: PASS")


def test_the_better_fallback_sets_the_bar(tmp_path, capsys):
    # Far above zero-filling, level with a CG-SENSE fall-back: what a container writing CG-SENSE would show.
    sample, out = _sample(tmp_path, recon_noise=0.02, zerofilled_noise=0.3, cgsense_noise=0.02)
    verdict = _judge(sample, out)
    assert verdict.psnr - dict((n, p) for n, p, _ in verdict.fallbacks)["zerofilled"] > 5
    assert verdict.best_fallback[0] == "cgsense" and abs(verdict.lead_db) < smoke_gate.MARGIN_DB
    code, last = _run(sample, out, capsys)
    assert code == 1 and "over the better fall-back (cgsense" in last


def test_fails_when_a_fallback_tree_is_missing(tmp_path, capsys):
    sample, out = _sample(tmp_path, recon_noise=0.01)
    for name in FILES:
        (out / "cgsense" / "2024" / name).unlink()
    code, last = _run(sample, out, capsys)
    assert code == 1 and "cgsense fall-back: 2 of 2 files invalid or missing" in last


def test_fails_when_a_file_is_missing(tmp_path, capsys):
    sample, out = _sample(tmp_path, recon_noise=0.01)
    (out / "2024" / FILES[1]).unlink()
    code, last = _run(sample, out, capsys)
    assert code == 1 and "1 of 2 files invalid or missing (w = 0.500)" in last


def test_fails_when_the_output_or_ground_truth_is_absent(tmp_path, capsys):
    code, last = _run(tmp_path / "sample", tmp_path / "out", capsys)
    assert code == 1 and last.startswith("smoke: FAIL (2024)") and "no ground-truth" in last
    sample, out = _sample(tmp_path, recon_noise=0.01)
    for name in FILES:
        (out / "2024" / name).unlink()
    code, last = _run(sample, out, capsys)
    assert code == 1 and "2 of 2 files invalid or missing (w = 0.000)" in last


def test_make_smoke_runs_the_fallbacks_the_gate_judges():
    """The Makefile's SMOKE_FALLBACKS and challenge.fallback.FALLBACK_METHODS are two spellings of one list."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text().splitlines()
    (line,) = [line for line in makefile if line.startswith("SMOKE_FALLBACKS")]
    assert set(line.split("=", 1)[1].split()) == set(smoke_gate.FALLBACK_METHODS)
