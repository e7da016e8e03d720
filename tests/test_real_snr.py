"""benchmarks.real_snr: it measures the simulator's own SNR, and the real acquisitions lie in the simulated range."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from benchmarks import real_snr
from benchmarks.native_eval import scored
from model.fftc import fft2c, ifft2c
from simulation.anatomy import real_data_root
from simulation.realistic import Acquisition, simulate


@pytest.mark.parametrize("snr", [8.0, 40.0])
def test_coil_snr_recovers_the_snr_the_simulator_drew(snr):
    ny, nx = 96, 192                                           # readout 2x oversampled: the object in its centre half
    y, x = np.mgrid[:ny, :nx]
    disk = (((y - ny / 2) / 36) ** 2 + ((x - nx / 2) / 40) ** 2 < 1).astype(np.float32)
    magnitude = gaussian_filter(disk, 2.0)[None]              # no energy left in the k-space corners
    acquisition = Acquisition(coil_counts=(1,), combined_single=1.0, snr=(snr, snr), shading=0.0,
                              phase_patches=0.0, flow=0.0, phase_texture=0.0)
    kspace, _ = simulate(magnitude, acquisition, np.random.default_rng(0))
    assert real_snr.coil_snr(kspace[0]) == pytest.approx([snr], rel=0.1)


def test_noise_ceiling_estimates_the_score_of_the_noise_free_truth():
    """Against a noisy reference the noise-free truth scores below infinity; the estimate from the reference alone
    (fresh noise at its corners' level) must land near that score, and fall as the noise grows."""
    ny, nx = 96, 192
    y, x = np.mgrid[:ny, :nx]
    truth = gaussian_filter((((y - ny / 2) / 30) ** 2 + ((x - nx / 2) / 34) ** 2 < 1).astype(np.float32), 2.0)
    truth = truth * (1 + 0.5 * np.sin(x / 5.0))                # structure inside the object
    clean = fft2c(torch.from_numpy(truth.astype(np.complex64))).numpy()[None]
    rng = np.random.default_rng(1)
    ceilings = []
    for sigma in (0.02, 0.1):                           # SNR about 50 and 10
        noisy = clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
        reference = np.abs(ifft2c(torch.from_numpy(noisy.astype(np.complex64))).numpy()[0])
        truth_psnr, _ = scored(reference, truth)
        estimate, ssim = real_snr.noise_ceiling(noisy)
        assert estimate == pytest.approx(truth_psnr, abs=0.5) and 0 < ssim <= 1
        ceilings.append(estimate)
    assert ceilings[0] > ceilings[1] + 10


def test_the_real_acquisitions_lie_in_the_simulated_snr_range(tmp_path):
    found = real_snr.real_acquisitions(real_data_root())
    if not found:
        pytest.skip("no real fully sampled acquisition under ../shared/data/real")
    low, high = Acquisition().snr
    for name, kspace in found:
        combined = float(np.sqrt((real_snr.coil_snr(kspace) ** 2).sum()))
        assert low <= combined <= high, name
    assert real_snr.main(["--out", str(tmp_path / "snr.md")]) == 0
    assert "| CMRxRecon 2024 cine SAX" in (tmp_path / "snr.md").read_text()


def test_without_real_data_it_says_so_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(real_snr, "real_data_root", lambda: None)
    assert real_snr.main(["--out", str(tmp_path / "snr.md")]) == 0
    assert "skip" in capsys.readouterr().err and not (tmp_path / "snr.md").exists()
