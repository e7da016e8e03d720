"""The cascades' data consistency (model/data_consistency.py) is a gradient step on 1/2 ||A x - y||^2 with the
tested SENSE operator, and the shipped generator computes method.md §5A's recursion written out by hand."""
import pytest
import torch

from model.checkpoint import load_generator
from model.coils import sens_expand, sens_reduce
from model.data_consistency import data_gradient, gradient_step, measured_image
from model.generator import central_columns, centre_magnitude, replace_columns
from model.reconstruction import DEFAULT_WEIGHTS
from model.sense import SenseOperator

torch.set_num_threads(1)


def window(batch=2, frames=5, coils=3, height=12, width=10, seed=0):
    """(sens (B, F, C, H, W), mask (B, F, 1, H, W) {0, 1}, x (B, F, H, W), masked k-space y (B, F, C, H, W))."""
    generator = torch.Generator().manual_seed(seed)
    sens = torch.randn(batch, frames, coils, height, width, dtype=torch.complex64, generator=generator)
    mask = (torch.rand(batch, frames, 1, height, width, generator=generator) > 0.5).float()
    x = torch.randn(batch, frames, height, width, dtype=torch.complex64, generator=generator)
    kspace = torch.randn(batch, frames, coils, height, width, dtype=torch.complex64, generator=generator)
    return sens, mask, x, kspace * mask


def test_the_step_is_the_explicit_formula():
    sens, mask, x, kspace = window()
    operator = SenseOperator(sens=sens, mask=mask)
    x0 = measured_image(operator, kspace)
    ffx, gradient = data_gradient(operator, x, x0)
    torch.testing.assert_close(x0, sens_reduce(kspace, sens), rtol=0, atol=0)
    torch.testing.assert_close(ffx, sens_reduce(mask * sens_expand(x, sens), sens), rtol=0, atol=0)
    torch.testing.assert_close(gradient, ffx - x0, rtol=0, atol=0)
    eta = torch.tensor(0.7)
    torch.testing.assert_close(gradient_step(x, gradient, eta), x - 0.7 * gradient)


def test_the_gradient_is_the_gradient_of_the_data_term():
    """torch's gradient of a real loss in a complex x is dL/d(conj x) x 2 = A^H (A x - y) here."""
    sens, mask, x, kspace = window(seed=1)
    operator = SenseOperator(sens=sens, mask=mask)
    x = x.requires_grad_(True)
    (0.5 * (operator.forward(x) - kspace).abs().pow(2).sum()).backward()
    _, gradient = data_gradient(operator, x.detach(), measured_image(operator, kspace))
    torch.testing.assert_close(x.grad, gradient, rtol=1e-5, atol=1e-5)


def explicit_recursion(generator, kspace, mask, num_acs, radial, shared):
    """method.md §5A written out with the coil operators, on the generator's own networks:
    x0 = S^H F^H y, ffx = S^H F^H M F S x, x_next = x - eta (ffx - x0) - D(x, [ffx, latent, x0, ffx - x0]).
    -> (centre-frame magnitude (B, H, W), final x (B, F, H, W))."""
    frames = generator.config.adjacent_frames
    sens = generator.sens_net(kspace, mask, num_acs, radial)
    x0 = sens_reduce(kspace, sens)
    x = sens_reduce(kspace + (1 - mask) * shared[:, None], sens) if generator.config.view_sharing else x0
    latent, previous = x, None
    for cascade in generator.cascades:
        ffx = sens_reduce(mask * sens_expand(x, sens), sens)
        inputs = [x, ffx, latent, x0, ffx - x0] if cascade.n_buffer else [x]
        injections = None
        if previous is not None and len(cascade.residual):
            injections = [conv(feature) for conv, feature in zip(cascade.residual, previous)]
        columns = central_columns(x.shape[-1], cascade.readout_fraction)
        out, previous = cascade.denoiser(torch.cat([t[..., columns] for t in inputs], dim=1), injections)
        if cascade.n_buffer:
            latent = replace_columns(latent, columns, out[:, 2 * frames:3 * frames])
        stepped = x - cascade.eta * (ffx - x0)
        x = replace_columns(stepped, columns, stepped[..., columns] - out[:, :frames])
    return centre_magnitude(x, sens), x


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="the shipped weights are not in this checkout")
@torch.inference_mode()
def test_the_shipped_generator_computes_the_explicit_recursion():
    generator, _ = load_generator(DEFAULT_WEIGHTS)
    frames = generator.config.adjacent_frames
    random = torch.Generator().manual_seed(19)
    kspace = torch.randn(1, frames, 4, 40, 36, dtype=torch.complex64, generator=random)
    mask = (torch.rand(1, frames, 1, 40, 1, generator=random) > 0.7).float().expand(1, frames, 1, 40, 36).clone()
    mask[..., 12:28, :] = 1                                        # 16 ACS lines
    kspace = kspace * mask / (kspace * mask).abs().max()
    shared = kspace.sum(dim=1) / mask.sum(dim=1).clamp_min(1)
    output = generator(kspace, mask, 16, False, shared)
    image, x = explicit_recursion(generator, kspace, mask, 16, False, shared)
    assert output.image.abs().max() > 0
    torch.testing.assert_close(output.image, image, rtol=0, atol=1e-5 * float(image.abs().max()))
    torch.testing.assert_close(output.complex_image, x, rtol=0, atol=1e-5 * float(x.abs().max()))
