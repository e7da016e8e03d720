"""challenge.smoke_gate: `make smoke` passes only with w = 1 per year and a PSNR gain over zero-filled."""
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


def _sample(tmp_path: Path, recon_noise: float, zerofilled_noise: float = 0.1) -> tuple[Path, Path]:
    sample, out = tmp_path / "sample", tmp_path / "out"
    _tree(sample / "2024" / "gt_full", None)
    _tree(out / "2024", recon_noise, seed=1)
    _tree(out / "zerofilled" / "2024", zerofilled_noise, seed=2)
    return sample, out


def _run(sample: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    code = smoke_gate.main(["--sample", str(sample), "--out", str(out), "--years", "2024", *extra])
    return code, capsys.readouterr().out.strip().splitlines()[-1]


def test_passes_with_every_file_and_a_gain_above_the_floor(tmp_path, capsys):
    sample, out = _sample(tmp_path, recon_noise=0.01)     # 20 dB less noise power than zero-filled
    code, last = _run(sample, out, capsys)
    assert code == 0 and last.startswith("smoke: PASS") and "2024 +" in last
    assert json.loads((out / "score_2024.json").read_text())["overall"]["num_valid"] == len(FILES)


def test_fails_below_the_floor(tmp_path, capsys):
    sample, out = _sample(tmp_path, recon_noise=0.08)
    verdict = smoke_gate.judge_year(sample / "2024" / "gt_full", out / "2024", out / "zerofilled" / "2024", 2024)
    assert 0 < verdict.gain_db < smoke_gate.FLOOR_DB
    code, last = _run(sample, out, capsys)
    assert code == 1 and last.startswith("smoke: FAIL (2024)") and "below the 2 dB floor" in last
    # The same outputs pass a floor they meet.
    code, last = _run(sample, out, capsys, "--floor-db", f"{verdict.gain_db - 0.1:.2f}")
    assert code == 0 and last.startswith("smoke: PASS")


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
