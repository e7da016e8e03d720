"""View sharing: the time-averaged k-space, the generator's first estimate from it, and its use at inference."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from model.checkpoint import save_generator
from model.config import PRESETS
from model.generator import GenreGenerator
from model.inference import GenreReconstructor
from model.normalisation import kspace_scale
from model.reconstruction import VolumeMeta
from model.view_sharing import shared_kspace
from model.window import adjacent_frames

torch.set_num_threads(1)
TINY_SHARED = replace(PRESETS["tiny"], view_sharing=True)


def test_shared_kspace_is_the_mean_of_the_frames_that_measured_each_location():
    kspace = torch.tensor([1, 2, 4], dtype=torch.complex64).reshape(3, 1, 1, 1).expand(3, 2, 1, 3).clone()
    mask = torch.tensor([[[1, 1, 0]], [[0, 1, 0]], [[1, 1, 0]]], dtype=torch.float32)   # (T=3, H=1, W=3)
    shared = shared_kspace(kspace * mask[:, None], mask)
    assert shared.shape == (2, 1, 3)
    expected = torch.tensor([(1 + 4) / 2, (1 + 2 + 4) / 3, 0], dtype=torch.complex64)
    torch.testing.assert_close(shared, expected.expand(2, 1, 3))
    torch.testing.assert_close(shared_kspace(kspace, mask), shared)          # unmasked k-space: masked frame by frame


def test_shared_kspace_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shared_kspace"):
        shared_kspace(torch.zeros(3, 2, 4, 5, dtype=torch.complex64), torch.zeros(2, 4, 5))


def window_input(seed=0, height=20, width=24, coils=3):
    generator = torch.Generator().manual_seed(seed)
    kspace = torch.randn(1, 5, coils, height, width, dtype=torch.complex64, generator=generator)
    mask = (torch.rand(1, 5, 1, height, width, generator=generator) > 0.7).float()
    mask[..., height // 2 - 4:height // 2 + 4, :] = 1
    shared = torch.randn(1, coils, height, width, dtype=torch.complex64, generator=generator)
    return kspace * mask, mask, shared


def test_the_shared_kspace_changes_only_a_view_sharing_generator():
    masked, mask, shared = window_input()
    torch.manual_seed(0)
    plain = GenreGenerator(PRESETS["tiny"]).eval()
    sharing = GenreGenerator(TINY_SHARED).eval()
    sharing.load_state_dict(plain.state_dict())        # view sharing adds no parameter
    with torch.no_grad():
        reference = plain(masked, mask, 8, False).image
        torch.testing.assert_close(plain(masked, mask, 8, False, shared).image, reference)
        assert not torch.allclose(sharing(masked, mask, 8, False, shared).image, reference, atol=1e-4)
        # where every location is measured there is nothing to fill
        full = torch.ones_like(mask)
        torch.testing.assert_close(sharing(masked, full, 8, False, shared).image,
                                   plain(masked, full, 8, False).image)
        with pytest.raises(ValueError, match="shared_kspace"):
            sharing(masked, mask, 8, False)


def test_inference_feeds_each_window_the_slice_average_at_the_window_scale(tmp_path):
    torch.manual_seed(0)
    generator = GenreGenerator(TINY_SHARED).eval()
    weights = tmp_path / "shared.pt"
    save_generator(weights, TINY_SHARED, generator.state_dict(), {"data": "random"})
    rng = np.random.default_rng(0)
    nt, nc, ny, nx = 6, 3, 20, 24
    kspace = (rng.standard_normal((nt, 1, nc, ny, nx)) + 1j * rng.standard_normal((nt, 1, nc, ny, nx)))
    mask = rng.random((nt, ny, nx)) < 0.3
    mask[:, ny // 2 - 4:ny // 2 + 4] = True
    kspace = (kspace * mask[:, None, None]).astype(np.complex64)
    meta = VolumeMeta(num_acs=8, radial=False, cyclic=True, name="cine")
    out = GenreReconstructor(weights, batch_size=4).reconstruct(kspace, mask, meta)

    t = 4
    frames = adjacent_frames(t, nt, 5, cyclic=True)
    k = torch.from_numpy(kspace[:, 0])
    m = torch.from_numpy(mask.astype(np.float32))
    window = k[frames][None]
    scale = kspace_scale(window)
    with torch.no_grad():
        expected = generator(window / scale.reshape(-1, 1, 1, 1, 1), m[frames][None, :, None], 8, False,
                             shared_kspace(k, m)[None] / scale.reshape(-1, 1, 1, 1)).image[0] * scale[0]
    np.testing.assert_allclose(out[t, 0], expected.numpy(), rtol=1e-4, atol=1e-5 * float(expected.max()))


@pytest.mark.parametrize("name", ["small", "paper"])
def test_view_sharing_presets_are_their_base_with_the_switch_on_and_cost_no_network_flops(name):
    from model.generator import flops_per_output_slice
    sharing = PRESETS[f"{name}-view-sharing"]
    assert sharing == replace(PRESETS[name], view_sharing=True)
    assert flops_per_output_slice(sharing, height=204, width=448) == \
        flops_per_output_slice(PRESETS[name], height=204, width=448)
