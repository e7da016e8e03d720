"""Adversarial losses and the unrolled discriminator (method.md sections 6 and 7.4).

GAN modes: 'vanilla' (BCE-with-logits per patch, pix2pix) and 'lsgan' (MSE to 1/0). Discriminator inputs are
magnitudes ``(B, 1, H, W)`` on the window's data range (training.trainer).
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan")


def _patch_loss(logits: torch.Tensor, target_value: float, mode: str) -> torch.Tensor:
    target = torch.full_like(logits, target_value)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"training/adversarial.py: unknown GAN mode {mode!r}, expected one of {GAN_MODES}")


def generator_adv_loss(d_logits_fake: torch.Tensor, mode: str = "vanilla") -> torch.Tensor:
    """Generator wants D to call its output real: loss(D(fake), 1) averaged over patches."""
    return _patch_loss(d_logits_fake, 1.0, mode)


def discriminator_loss(d_logits_real: torch.Tensor, d_logits_fake: torch.Tensor,
                       mode: str = "vanilla") -> torch.Tensor:
    """1/2 [loss(D(real), 1) + loss(D(fake), 0)]; pass logits of a detached fake."""
    return 0.5 * (_patch_loss(d_logits_real, 1.0, mode) + _patch_loss(d_logits_fake, 0.0, mode))


def discriminator_step(discriminator: nn.Module, d_optimizer: torch.optim.Optimizer, real: torch.Tensor,
                       fake: torch.Tensor, mode: str = "vanilla") -> torch.Tensor:
    """One optimiser step of D on a (real, fake) pair of D inputs; fake is detached here. Returns the loss."""
    d_optimizer.zero_grad(set_to_none=True)
    loss = discriminator_loss(discriminator(real), discriminator(fake.detach()), mode)
    loss.backward()
    d_optimizer.step()
    return loss.detach()


def unrolled_discriminator(discriminator: nn.Module, d_optimizer: torch.optim.Optimizer, real: torch.Tensor,
                           fake: torch.Tensor, steps: int = 5, mode: str = "vanilla") -> nn.Module:
    """First-order unrolled D (Metz et al. 2017): a copy of D and of its optimiser state advanced `steps`
    optimiser steps on the current pair. The copy's parameters are frozen afterwards, so the generator's
    adversarial loss through it back-propagates into the generator only. D and d_optimizer are untouched.

    Pass the bare module, not a DDP wrapper: the lookahead is local to each rank.
    """
    own_params = {id(p) for p in discriminator.parameters()}
    optimised = [p for group in d_optimizer.param_groups for p in group["params"]]
    if len(optimised) != len(own_params) or any(id(p) not in own_params for p in optimised):
        raise ValueError("training/adversarial.py: d_optimizer must optimise exactly the discriminator's parameters")
    lookahead = copy.deepcopy(discriminator)
    # The optimiser is rebuilt over the copy's parameters in the same order; its state is deep-copied because
    # load_state_dict may alias the original moment tensors.
    index_of = {id(p): i for i, p in enumerate(discriminator.parameters())}
    copied_params = list(lookahead.parameters())
    lookahead_optimizer = type(d_optimizer)(
        [{**{k: v for k, v in group.items() if k != "params"},
          "params": [copied_params[index_of[id(p)]] for p in group["params"]]}
         for group in d_optimizer.param_groups]
    )
    lookahead_optimizer.load_state_dict(copy.deepcopy(d_optimizer.state_dict()))
    lookahead.train(discriminator.training)
    for _ in range(steps):
        discriminator_step(lookahead, lookahead_optimizer, real, fake, mode)
    lookahead.zero_grad(set_to_none=True)
    lookahead.requires_grad_(False)
    return lookahead
