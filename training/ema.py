"""An exponential moving average of the generator's weights, validated and exported instead of the raw ones.

GAN generators trained with small batches wander around a good solution; the average of the recent steps sits
nearer its centre (the EMA generator of Karras et al. 2018, the weight averaging of Izmailov et al. 2018). With
``decay`` d the average forgets with a horizon of about 1 / (1 - d) steps.
"""
import copy

import torch
from torch import nn


class WeightAverage:
    """``module``: a frozen copy of the trained module whose floating-point parameters and buffers follow
    ``avg <- d * avg + (1 - d) * current`` after each optimiser step."""

    def __init__(self, trained: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(trained).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def reset(self, trained: nn.Module) -> None:
        """Restart the average at ``trained``'s current weights (a stage that starts from other weights)."""
        self.module.load_state_dict(trained.state_dict())

    @torch.no_grad()
    def update(self, trained: nn.Module) -> None:
        current = trained.state_dict()
        for name, average in self.module.state_dict().items():
            if average.is_floating_point():
                average.lerp_(current[name].detach(), 1.0 - self.decay)
            else:
                average.copy_(current[name])
