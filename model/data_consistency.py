"""The cascades' data consistency (method.md §5A): a gradient step on 1/2 ||A x - y||^2 with the SENSE
operator A = M F S of model.sense, the forward/adjoint pair whose adjointness tests/test_physics.py proves; and the
optional hard data consistency of the output (``hard_consistent_image``), which puts the measurements back.

The gradient of the data term is A^H A x - A^H y. A cascade computes A^H A x (``ffx``, which the denoiser also
sees) at every step; A^H y (``x0``) is the same for every cascade and is computed once from the measurements.

Shapes: x (B, F, H, W) complex; the operator's maps (B, F, C, H, W) and mask (B, F, 1, H, W) {0, 1};
measured k-space y (B, F, C, H, W).
"""
import torch

from model.coils import rss, sens_expand
from model.fftc import ifft2c
from model.sense import SenseOperator


def measured_image(operator: SenseOperator, kspace: torch.Tensor) -> torch.Tensor:
    """x0 = A^H y (B, F, H, W): the measured k-space y (B, F, C, H, W) seen through the adjoint."""
    return operator.adjoint(kspace)


def data_gradient(operator: SenseOperator, x: torch.Tensor, x0: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(A^H A x, A^H A x - A^H y) for x (B, F, H, W) and x0 = A^H y (B, F, H, W): the normal image ``ffx`` and
    the gradient of 1/2 ||A x - y||^2 at x."""
    ffx = operator.normal(x)
    return ffx, ffx - x0


def gradient_step(x: torch.Tensor, gradient: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """x - eta * gradient: the data-consistency move of one cascade, eta its learned step size."""
    return x - eta * gradient


def replace_measured(estimate: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Coil k-space (..., C, H, W): ``measured`` where ``mask`` (broadcastable, {0, 1}) sampled, ``estimate``
    elsewhere."""
    return torch.where(mask > 0, measured, estimate)


def hard_consistent_image(x: torch.Tensor, sens: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor
                          ) -> torch.Tensor:
    """x (B, H, W) complex, maps ``sens`` (B, C, H, W), measured k-space (B, C, H, W), mask (B, 1, H, W) ->
    (B, H, W) real: the RSS over coils of the coil images whose k-space is the measurement where it was sampled
    and F S x elsewhere. The retrospective challenge data measure the reference's own samples (noise included),
    which a gradient step only approaches."""
    return rss(ifft2c(replace_measured(sens_expand(x, sens), kspace, mask)))
