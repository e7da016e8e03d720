"""Reflection through the centred-FFT origin, and the reflection ensemble of GenreReconstructor."""
import dataclasses

import numpy as np
import pytest
import torch

from model.checkpoint import save_generator
from model.config import PRESETS
from model.fftc import ifft2c
from model.generator import GenreGenerator
from model.inference import GenreReconstructor
from model.reconstruction import VolumeMeta
from model.reflection import ENSEMBLES, reflect

torch.set_num_threads(1)


@pytest.mark.parametrize("shape", [(3, 6, 8), (3, 7, 9), (2, 6, 9)])
@pytest.mark.parametrize("dims", [(-1,), (-2,), (-2, -1)])
def test_reflecting_kspace_reflects_the_image(shape, dims):
    kspace = torch.randn(shape, dtype=torch.complex64)
    torch.testing.assert_close(ifft2c(reflect(kspace, dims)), reflect(ifft2c(kspace), dims))
    assert torch.equal(reflect(reflect(kspace, dims), dims), kspace)
    assert not torch.equal(reflect(kspace, dims), kspace)


def test_reflection_keeps_the_centre_index():
    line = torch.arange(8.0)
    assert reflect(line, (-1,)).tolist() == [0, 7, 6, 5, 4, 3, 2, 1]      # index 4 stays, 4 + n -> 4 - n
    assert reflect(torch.arange(7.0), (-1,)).tolist() == [6, 5, 4, 3, 2, 1, 0]


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "view-sharing"])
def weights(request, tmp_path_factory):
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], view_sharing=request.param)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_generator(path, config, GenreGenerator(config).state_dict(), {"data": "random"})
    return path


@pytest.mark.parametrize("meta", [VolumeMeta(num_acs=8, radial=False, cyclic=True, name="cine"),
                                  VolumeMeta(num_acs=8, radial=True, cyclic=True, name="radial")])
def test_ensemble_averages_the_reflected_reconstructions(weights, meta):
    rng = np.random.default_rng(0)
    nt, nz, nc, ny, nx = 6, 1, 3, 20, 23
    mask = rng.random((nt, ny, nx)) < 0.3
    mask[:, ny // 2 - 4:ny // 2 + 4] = True
    kspace = (rng.standard_normal((nt, nz, nc, ny, nx)) + 1j * rng.standard_normal((nt, nz, nc, ny, nx)))
    kspace = (kspace * mask[:, None, None]).astype(np.complex64)
    single = GenreReconstructor(weights, batch_size=4, ensemble=1)
    expected = single.reconstruct(kspace, mask, meta)
    for dims in ENSEMBLES[4][1:]:
        reflected = single.reconstruct(reflect(torch.from_numpy(kspace), dims).numpy(),
                                       reflect(torch.from_numpy(mask), dims).numpy(), meta)
        expected = expected + reflect(torch.from_numpy(reflected), dims).numpy()
    four = GenreReconstructor(weights, batch_size=4, ensemble=4).reconstruct(kspace, mask, meta)
    np.testing.assert_allclose(four, expected / 4, rtol=1e-4, atol=1e-5 * expected.max())
    # the reflected passes are different reconstructions: the ensemble is not the single pass
    assert np.abs(four - single.reconstruct(kspace, mask, meta)).max() > 1e-3 * four.max()


def test_unknown_ensemble_is_refused(weights):
    with pytest.raises(ValueError, match="ensemble must be one of"):
        GenreReconstructor(weights, ensemble=3)


def test_run_options_choose_the_ensemble(weights, tmp_path):
    from challenge.runner import RunOptions, _default_factory

    options = RunOptions(input_root=tmp_path, output_root=tmp_path / "out", weights=weights, device="cpu",
                         ensemble=4)
    assert _default_factory(options, (0, 1))("genre").reflections == ENSEMBLES[4]
