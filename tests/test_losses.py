"""Losses, EAR, SDA memory and CoV weighting (training/losses.py, training/cov_weighting.py)."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from model.coils import normalise_to_unit_rss
from model.fftc import fft2c
from training.cov_weighting import CoVWeighting
from training.losses import (SDAMemory, ear_loss, edge_mask, gaussian_stats, image_l1,
                             kspace_loss, predicted_centre_kspace, ssim_loss, ssim_map, symmetric_kl)

torch.set_num_threads(1)


def _square(size: int = 48, blur: float = 0.0) -> torch.Tensor:
    image = np.full((size, size), 0.1)
    image[12:36, 14:34] = 1.0
    if blur:
        image = gaussian_filter(image, blur, mode="nearest")
    return torch.tensor(image, dtype=torch.float64).unsqueeze(0)


def test_ssim_loss_zero_for_identical_and_matches_skimage():
    rng = np.random.default_rng(0)
    target = gaussian_filter(rng.random((40, 52)), 2.0)
    pred = target + 0.05 * rng.standard_normal(target.shape)
    data_range = float(target.max())
    t = torch.tensor(target).unsqueeze(0)
    p = torch.tensor(pred).unsqueeze(0)
    assert ssim_loss(t, t, torch.tensor([data_range])).item() == pytest.approx(0.0, abs=1e-12)
    _, full_map = structural_similarity(target, pred, win_size=7, data_range=data_range, K1=0.01, K2=0.03,
                                        use_sample_covariance=True, gaussian_weights=False, full=True)
    expected = full_map[3:-3, 3:-3].mean()
    ours = ssim_map(p, t, data_range)
    assert ours.shape == (1, 34, 46)
    assert 1.0 - ssim_loss(p, t, data_range).item() == pytest.approx(expected, abs=1e-4)
    assert expected < 0.99  # the comparison is not between two trivially perfect scores


def test_image_l1_and_kspace_loss():
    t = torch.rand(2, 8, 8)
    assert image_l1(t, t, torch.tensor([1.0, 2.0])).item() == 0.0
    assert image_l1(t + 0.5, t, torch.tensor([1.0, 2.0])).item() == pytest.approx(0.375)
    k = torch.randn(2, 3, 8, 8, dtype=torch.complex64)
    assert kspace_loss(k, k).item() == 0.0
    assert kspace_loss(2 * k, k).item() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="losses.py"):
        kspace_loss(k.abs(), k.abs())


def test_predicted_centre_kspace_is_the_centre_frame_seen_by_each_coil():
    x = torch.randn(1, 5, 16, 16, dtype=torch.complex64)
    sens = normalise_to_unit_rss(torch.randn(1, 5, 4, 16, 16, dtype=torch.complex64))
    k_pred = predicted_centre_kspace(x, sens)
    assert k_pred.shape == (1, 4, 16, 16)
    torch.testing.assert_close(k_pred, fft2c(sens[:, 2] * x[:, 2, None]))


def test_edge_mask_marks_edges_only():
    mask = edge_mask(_square(), torch.tensor([1.0]))
    assert mask.shape == (1, 48, 48)
    assert mask[0, 12, 24] == 1 and mask[0, 24, 14] == 1   # on the square's border
    assert mask[0, 24, 24] == 0 and mask[0, 2, 2] == 0     # flat inside and outside


def test_ear_zero_for_identical_and_grows_with_blur():
    target = _square()
    L = torch.tensor([1.0])
    assert ear_loss(target, target, L).item() == pytest.approx(0.0, abs=1e-10)
    mild = ear_loss(_square(blur=1.0), target, L).item()
    strong = ear_loss(_square(blur=2.5), target, L).item()
    assert 0.0 < mild < strong


def test_ear_gradient_reaches_prediction():
    pred = _square(blur=1.5).requires_grad_(True)
    ear_loss(pred, _square(), 1.0).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_symmetric_kl_properties():
    g = torch.Generator().manual_seed(1)
    mu_p, mu_q = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    var_p, var_q = torch.rand(3, 8, generator=g) + 0.1, torch.rand(3, 8, generator=g) + 0.1
    assert torch.allclose(symmetric_kl(mu_p, var_p, mu_p, var_p), torch.zeros(3))
    forward, backward = symmetric_kl(mu_p, var_p, mu_q, var_q), symmetric_kl(mu_q, var_q, mu_p, var_p)
    assert torch.allclose(forward, backward)
    assert (forward > 0).all()
    # closed form for one channel: means 0 and 1, unit variances -> 1/2 (0 + 1 * 2) = 1
    assert symmetric_kl(torch.zeros(1), torch.ones(1), torch.ones(1), torch.ones(1)).item() == pytest.approx(1.0)


def test_gaussian_stats():
    features = torch.arange(8.0).reshape(1, 2, 2, 2)
    mean, var = gaussian_stats(features)
    assert torch.allclose(mean, torch.tensor([[1.5, 5.5]]))
    assert torch.allclose(var, torch.tensor([[1.25, 1.25]]) + 1e-6)


def _cascade_features(seed: int, shift: float = 0.0, cascades: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 6, 4, 4, generator=g) + shift for _ in range(cascades)]


def test_sda_memory_window_and_gradients():
    memory = SDAMemory(num_domains=5)
    first = _cascade_features(0)
    assert memory.loss(first, domain=0) is None
    memory.update(first, domain=0)
    same_domain = _cascade_features(1)
    assert memory.loss(same_domain, domain=0) is None     # only its own domain is filled
    new = [f.clone().requires_grad_(True) for f in _cascade_features(2, shift=1.0)]
    loss = memory.loss(new, domain=3)
    assert loss is not None and loss.item() > 0
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in new)
    stored = memory.slots[0]
    assert all(not m.requires_grad and not v.requires_grad for m, v in zip(*stored))
    # the value is the sum over cascades of the SKL to the single other slot
    expected = sum(symmetric_kl(*gaussian_stats(f.detach()), *gaussian_stats(o)).item()
                   for f, o in zip(new, first))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_sda_memory_state_dict_round_trip():
    memory = SDAMemory(num_domains=5)
    memory.update(_cascade_features(0), domain=1)
    restored = SDAMemory(num_domains=5)
    restored.load_state_dict(memory.state_dict())
    probe = _cascade_features(5, shift=0.5)
    assert restored.loss(probe, 2).item() == pytest.approx(memory.loss(probe, 2).item())
    with pytest.raises(ValueError, match="losses.py"):
        SDAMemory(num_domains=4).load_state_dict(memory.state_dict())


def _cov_run(cov: CoVWeighting, steps: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    weights = {}
    for _ in range(steps):
        losses = {"steady": torch.tensor(1.0), "noisy": torch.tensor(1.0 + 0.5 * abs(rng.standard_normal()))}
        _, weights = cov(losses)
    return weights


def test_cov_uniform_first_then_favours_noisy_ratio():
    cov = CoVWeighting(["steady", "noisy"])
    for step in range(2):
        total, weights = cov({"steady": torch.tensor(1.0), "noisy": torch.tensor(4.0 + step)})
        assert weights == {"steady": pytest.approx(0.5), "noisy": pytest.approx(0.5)}
        assert total.item() == pytest.approx(0.5 * (1.0 + 4.0 + step))
    weights = _cov_run(cov, 30)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["noisy"] > 0.9 > weights["steady"]


def test_cov_total_carries_gradient_but_weights_are_constants():
    cov = CoVWeighting(["steady", "noisy"])
    _cov_run(cov, 5)
    a = torch.tensor(0.5, requires_grad=True)
    b = torch.tensor(1.7, requires_grad=True)
    total, weights = cov({"steady": a * 2, "noisy": b})
    assert weights["steady"] != pytest.approx(0.5)
    total.backward()
    assert a.grad.item() == pytest.approx(2 * weights["steady"])
    assert b.grad.item() == pytest.approx(weights["noisy"])


def test_cov_skips_missing_and_zero_terms():
    cov = CoVWeighting(["image", "sda", "adv"])
    total, weights = cov({"image": torch.tensor(1.0), "sda": None, "adv": torch.tensor(3.0)})
    assert weights["sda"] == 0.0 and weights["image"] == pytest.approx(0.5)
    assert total.item() == pytest.approx(2.0)
    _, weights = cov({"image": torch.tensor(1.0), "sda": torch.tensor(0.0), "adv": torch.tensor(3.0)})
    assert weights["sda"] == 0.0 and sum(weights.values()) == pytest.approx(1.0)
    _, weights = cov({"image": torch.tensor(1.2), "sda": torch.tensor(0.7), "adv": torch.tensor(2.0)})
    assert weights["sda"] > 0 and sum(weights.values()) == pytest.approx(1.0)
    assert int(cov.count[1]) == 1   # the None and 0-valued steps did not count
    with pytest.raises(ValueError, match="cov_weighting.py"):
        cov({"image": torch.tensor(1.0)})


def test_cov_cap_holds_a_term_and_shares_the_rest_in_proportion():
    free, capped = CoVWeighting(["steady", "noisy", "other"]), CoVWeighting(["steady", "noisy", "other"],
                                                                           caps={"noisy": 0.2})
    rng = np.random.default_rng(0)
    for _ in range(30):
        losses = {"steady": torch.tensor(1.0 + 0.05 * rng.standard_normal()),
                  "noisy": torch.tensor(1.0 + 0.5 * abs(rng.standard_normal())),
                  "other": torch.tensor(1.0 + 0.1 * rng.standard_normal())}
        total_free, weights_free = free(losses)
        total, weights = capped(losses)
    assert weights_free["noisy"] > 0.5                               # uncapped, the noisy ratio dominates
    assert weights["noisy"] == pytest.approx(0.2)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["steady"] / weights["other"] == pytest.approx(weights_free["steady"] / weights_free["other"])
    assert total.item() == pytest.approx(sum(weights[k] * float(v) for k, v in losses.items()))
    below = CoVWeighting(["a", "b"], caps={"a": 0.9})               # a cap above the weight changes nothing
    assert below({"a": torch.tensor(1.0), "b": torch.tensor(2.0)})[1] == {"a": 0.5, "b": 0.5}
    for caps in ({"missing": 0.1}, {"a": 0.0}, {"a": 1.5}):
        with pytest.raises(ValueError, match="caps"):
            CoVWeighting(["a", "b"], caps=caps)


def test_cov_state_dict_round_trip_and_decay_mode():
    cov = CoVWeighting(["steady", "noisy"], mean_mode="decay", decay=0.9)
    _cov_run(cov, 10)
    restored = CoVWeighting(["steady", "noisy"])
    restored.load_state_dict(cov.state_dict())
    assert restored.mean_mode == "decay" and restored.mean_L.dtype == torch.float32
    assert _cov_run(restored, 5, seed=3) == _cov_run(cov, 5, seed=3)
