"""benchmarks.phase_twin's twins keep the frame's magnitude and change its phase only."""
import numpy as np
import torch

from benchmarks.phase_twin import twins
from model.fftc import ifft2c


def test_twins_keep_the_magnitude_and_change_the_phase():
    rng = np.random.default_rng(0)
    image = (1 + rng.random((32, 48))) * np.exp(1j * rng.uniform(-np.pi, np.pi, (32, 48)))
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image), norm="ortho")).astype(np.complex64)
    found = twins(kspace, draws=1)
    assert len(found) == 6 and next(iter(found)) == "as measured"
    for name, twin in found.items():
        twin_image = ifft2c(torch.from_numpy(twin)).numpy()
        np.testing.assert_allclose(np.abs(twin_image), np.abs(image), rtol=1e-4, atol=1e-5)
        if name != "as measured":
            assert not np.allclose(twin_image, image, atol=1e-3)
    zero = ifft2c(torch.from_numpy(found["its magnitude, zero phase"])).numpy()
    assert np.abs(zero.imag).max() < 1e-4
