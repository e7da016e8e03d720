"""PatchGAN discriminator and adversarial losses (training/discriminator.py, training/adversarial.py)."""
import pytest
import torch

from training.discriminator import DiscriminatorConfig, PatchDiscriminator
from training.adversarial import (discriminator_loss, discriminator_step, generator_adv_loss,
                                  unrolled_discriminator)

torch.set_num_threads(1)


def _small_discriminator() -> PatchDiscriminator:
    torch.manual_seed(0)
    return PatchDiscriminator(DiscriminatorConfig(ndf=8))


def _toy_pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.rand(1, 1, 32, 32, generator=g)
    fake = 0.2 * torch.rand(1, 1, 32, 32, generator=g) + 0.8   # bright and flat: easy to separate
    return real, fake


def test_default_discriminator_size_and_patch_map():
    d1 = PatchDiscriminator()
    assert sum(p.numel() for p in d1.parameters()) == pytest.approx(2.76e6, rel=0.005)
    assert _small_discriminator()(torch.rand(2, 1, 64, 48)).shape == (2, 1, 6, 4)
    with pytest.raises(ValueError, match="training/discriminator.py"):
        d1(torch.rand(1, 2, 64, 64))


@pytest.mark.parametrize("mode", ["vanilla", "lsgan"])
def test_losses_values(mode):
    confident_real, confident_fake = torch.full((1, 1, 4, 4), 10.0), torch.full((1, 1, 4, 4), -10.0)
    if mode == "vanilla":
        assert discriminator_loss(confident_real, confident_fake, mode).item() < 1e-4
        assert generator_adv_loss(torch.zeros(1, 1, 4, 4), mode).item() == pytest.approx(0.6931, abs=1e-4)
    else:
        assert discriminator_loss(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), mode).item() == 0.0
        assert generator_adv_loss(torch.zeros(1, 1, 4, 4), mode).item() == pytest.approx(1.0)
    assert generator_adv_loss(confident_fake, mode) > generator_adv_loss(confident_real, mode)
    with pytest.raises(ValueError, match="adversarial.py"):
        generator_adv_loss(confident_real, "wgan")


def test_discriminator_loss_decreases_on_separable_pair():
    d = _small_discriminator()
    optimizer = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real, fake = _toy_pair()
    losses = [discriminator_step(d, optimizer, real, fake).item() for _ in range(15)]
    assert losses[-1] < losses[0] - 0.05


def test_unrolled_copy_leaves_original_untouched():
    d = _small_discriminator()
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    real, fake = _toy_pair()
    discriminator_step(d, optimizer, real, fake)   # non-empty optimiser state to copy
    params_before = [p.detach().clone() for p in d.parameters()]
    state_before = {k: v.clone() for k, v in optimizer.state[next(iter(d.parameters()))].items()}

    lookahead = unrolled_discriminator(d, optimizer, real, fake, steps=5)

    assert all(torch.equal(a, b) for a, b in zip(params_before, d.parameters()))
    assert all(torch.equal(v, optimizer.state[next(iter(d.parameters()))][k]) for k, v in state_before.items())
    assert any(not torch.equal(a, b) for a, b in zip(params_before, lookahead.parameters()))
    # the lookahead D separates the pair better than the current one
    assert (discriminator_loss(lookahead(real), lookahead(fake)) < discriminator_loss(d(real), d(fake))).item()
    # generator gradients flow through the copy, the copy itself collects none
    fake_image = fake.clone().requires_grad_(True)
    generator_adv_loss(lookahead(fake_image)).backward()
    assert fake_image.grad.abs().sum() > 0
    assert all(p.grad is None for p in lookahead.parameters())


def test_unrolled_rejects_foreign_optimizer():
    d = _small_discriminator()
    other = torch.optim.Adam(_small_discriminator().parameters())
    real, fake = _toy_pair()
    with pytest.raises(ValueError, match="adversarial.py"):
        unrolled_discriminator(d, other, real, fake, steps=1)
