"""The multi-coil Cartesian SENSE operator A = M F S and its adjoint A^H, as one unit.

Shapes: image ``x`` (..., ny, nx) complex; maps ``sens`` (..., nc, ny, nx) complex; ``mask`` broadcastable to
(..., nc, ny, nx), 1 where k-space was sampled. k-space ``y`` (..., nc, ny, nx) complex.
"""
from dataclasses import dataclass

import torch

from model.coils import sens_expand, sens_reduce


@dataclass
class SenseOperator:
    sens: torch.Tensor
    mask: torch.Tensor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """A x = M F S x."""
        return self.mask * sens_expand(image, self.sens)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """A^H y = S^H F^H M y."""
        return sens_reduce(self.mask * kspace, self.sens)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """A^H A x = S^H F^H M F S x: M is a 0/1 projection (M^H M = M), so the mask is applied once, which
        saves the cascades' data consistency one full-size multiply per step."""
        return sens_reduce(self.mask * sens_expand(image, self.sens), self.sens)
