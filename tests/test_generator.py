"""GENRE generator: shapes on awkward sizes, residual zero-init, parameter/FLOP budgets, checkpoints, CLI."""
import json
from dataclasses import replace

import pytest
import torch

from model.__main__ import main as model_cli
from model.checkpoint import WeightsError, load_generator, save_generator
from model.coils import rss
from model.config import PRESETS, ConfigError, config_asdict, config_from_dict
from model.generator import GenreGenerator, flops_per_output_slice, parameter_counts
from model.reconstruction import WeightsUnavailable

torch.set_num_threads(1)
TINY = PRESETS["tiny"]


def random_input(batch, coils, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    kspace = torch.randn(batch, 5, coils, height, width, dtype=torch.complex64, generator=generator)
    mask = (torch.rand(batch, 5, 1, height, width, generator=generator) > 0.6).float()
    mask[..., height // 2 - 8:height // 2 + 8, :] = 1  # ACS rows
    return kspace * mask, mask


def build(config=TINY, seed=0):
    torch.manual_seed(seed)
    return GenreGenerator(config).eval()


@pytest.mark.parametrize("coils,radial", [(4, False), (32, True), (4, True)])
def test_output_shapes_on_odd_matrix(coils, radial):
    kspace, mask = random_input(2, coils, 37, 51)
    with torch.no_grad():
        out = build()(kspace, mask, num_acs=16, radial=radial)
    assert out.image.shape == (2, 37, 51) and out.image.dtype == torch.float32
    assert out.complex_image.shape == (2, 5, 37, 51) and out.complex_image.dtype == torch.complex64
    assert out.sens.shape == (2, 5, coils, 37, 51)
    assert len(out.features) == len(out.cascade_images) == TINY.cascades
    assert out.features[0].shape == (2, TINY.denoiser.feature_dim[2], 40 // 8, 56 // 8)
    assert torch.isfinite(out.image).all()
    torch.testing.assert_close(rss(out.sens), torch.ones(2, 5, 37, 51), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.image, out.cascade_images[-1])
    torch.testing.assert_close(out.image, out.complex_image[:, 2].abs(), atol=1e-4, rtol=1e-4)


def test_single_repeated_frame_and_all_zero_input_stay_finite():
    kspace, mask = random_input(1, 4, 20, 24)
    kspace = kspace[:, 2:3].expand(1, 5, 4, 20, 24)  # nt = 1: the window repeats the only frame
    with torch.no_grad():
        generator = build()
        assert torch.isfinite(generator(kspace, mask, 16, False).image).all()
        assert torch.isfinite(generator(torch.zeros_like(kspace), mask, 16, False).image).all()


def test_residual_connections_start_as_identity():
    with_residual = build(TINY)
    without = GenreGenerator(replace(TINY, residual=False)).eval()
    missing, unexpected = without.load_state_dict(with_residual.state_dict(), strict=False)
    assert not missing and unexpected and all(".residual." in key for key in unexpected)
    kspace, mask = random_input(1, 4, 24, 32)
    with torch.no_grad():
        a = with_residual(kspace, mask, 16, False)
        b = without(kspace, mask, 16, False)
    torch.testing.assert_close(a.image, b.image)
    # but they are live: perturbing a residual conv changes the output
    with torch.no_grad():
        with_residual.cascades[1].residual[0].weight.normal_()
        assert not torch.allclose(with_residual(kspace, mask, 16, False).image, b.image)


def test_prompts_are_saved_but_frozen():
    generator = build()
    names = [name for name, _ in generator.named_parameters()]
    assert not any(name.endswith(".prompt") for name in names)
    assert any(key.endswith("prompt3.prompt") for key in generator.state_dict())
    trainable, total = parameter_counts(generator)
    assert total - trainable == sum(b.numel() for b in generator.buffers()) > 0


def test_paper_config_parameter_count():
    with torch.device("meta"):
        trainable, total = parameter_counts(GenreGenerator(PRESETS["paper"]))
    assert abs(trainable - 95.9e6) / 95.9e6 < 0.05
    assert abs(total - 109.6e6) / 109.6e6 < 0.05


def test_small_config_flop_budget():
    flops = flops_per_output_slice(PRESETS["small"], coils=10, height=204, width=448)
    assert 0.01e12 < flops <= 0.05e12


def test_paper_config_flop_budget():
    """The issue's target: at most 1.5 TFLOP per output slice (10 coils, 448 x 204), and at the larger
    246 x 512 slice of `python -m model info` too."""
    assert flops_per_output_slice(PRESETS["paper"], coils=10, height=204, width=448) <= 1.5e12
    assert flops_per_output_slice(PRESETS["paper"], coils=10, height=246, width=512) <= 1.5e12


def test_the_readout_crop_halves_the_cascades_and_the_downsampled_sens_net_quarters_its_cost():
    def cost(config):
        total = flops_per_output_slice(config, 4, 64, 128)
        no_cascade_part = flops_per_output_slice(replace(config, cascades=1), 4, 64, 128)
        per_cascade = (total - no_cascade_part) / (config.cascades - 1)
        return no_cascade_part - per_cascade, per_cascade          # (sensitivity net, one cascade)
    sens_full, cascade_full = cost(TINY)
    sens_small, cascade_cropped = cost(replace(TINY, denoiser_readout_fraction=0.5, sens_downsample=2))
    assert 0.45 < cascade_cropped / cascade_full < 0.55
    assert 0.2 < sens_small / sens_full < 0.3


CROPPED = replace(TINY, denoiser_readout_fraction=0.5, sens_downsample=2)


@pytest.mark.parametrize("height,width", [(33, 27), (24, 64), (20, 9)])
def test_cropped_readout_and_downsampled_maps_on_awkward_sizes(height, width):
    kspace, mask = random_input(2, 4, height, width)
    generator = build(CROPPED).train()
    out = generator(kspace, mask, num_acs=16, radial=False)
    assert out.image.shape == (2, height, width) and torch.isfinite(out.image).all()
    torch.testing.assert_close(rss(out.sens), torch.ones(2, 5, height, width), atol=1e-4, rtol=0)
    out.image.sum().backward()
    assert all(p.grad is not None for name, p in generator.named_parameters()
               if p.requires_grad and ".residual." not in name)


def test_columns_outside_the_crop_take_the_data_consistency_step_only():
    from model.coils import sens_expand, sens_reduce
    from model.generator import central_columns
    from model.sense import SenseOperator
    generator = build(CROPPED)
    kspace, mask = random_input(1, 4, 24, 40)
    cascade = generator.cascades[0]
    with torch.no_grad():
        cascade.eta.fill_(0.7)
        sens = generator.sens_net(kspace, mask, 16, False)
        x0 = sens_reduce(kspace, sens)
        x = x0 * 1.3
        latent = x0 * 0.5
        x_next, latent_next, _ = cascade(x, x0, latent, SenseOperator(sens=sens, mask=mask), None)
        gradient = sens_reduce(mask * sens_expand(x, sens), sens) - x0
    columns = central_columns(40, 0.5)
    assert columns == slice(10, 30)
    outside = torch.ones(40, dtype=torch.bool)
    outside[columns] = False
    torch.testing.assert_close(x_next[..., outside], (x - 0.7 * gradient)[..., outside])
    torch.testing.assert_close(latent_next[..., outside], latent[..., outside])
    assert not torch.allclose(x_next[..., columns], (x - 0.7 * gradient)[..., columns])


@pytest.mark.parametrize("changes", [{"denoiser_readout_fraction": 0.0}, {"denoiser_readout_fraction": 1.5},
                                     {"sens_downsample": 0}, {"sens_downsample": 1.5}])
def test_invalid_compute_savers_are_refused(changes):
    with pytest.raises(ValueError):
        replace(TINY, **changes)


@pytest.mark.parametrize("gated_from", [-1, 4])
def test_a_gate_index_outside_the_cascades_is_refused(gated_from):
    with pytest.raises(ValueError, match="gated_from"):
        replace(TINY, gated_from=gated_from)


def test_shut_gates_pass_their_input_through_and_open_ones_change_nothing():
    gated = build(replace(TINY, gated_from=2))
    assert [c.gate is not None for c in gated.cascades] == [False, False, True, True]
    plain = GenreGenerator(TINY).eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.endswith(".gate")})
    kspace, mask = random_input(1, 4, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(gated(kspace, mask, 16, False).image, plain(kspace, mask, 16, False).image)
        for cascade in gated.cascades[2:]:
            cascade.gate.fill_(0.0)
        out = gated(kspace, mask, 16, False)
    # the gated cascades' denoisers still run (their latent and features change) but x leaves them as it came
    assert torch.equal(out.cascade_images[3], out.cascade_images[1])
    assert not torch.equal(out.cascade_images[1], out.cascade_images[0])


def test_gradient_checkpointing_matches_and_backpropagates():
    generator = build().train()
    kspace, mask = random_input(1, 4, 16, 24)
    plain = generator(kspace, mask, 16, False).image
    generator.gradient_checkpointing = True
    checkpointed = generator(kspace, mask, 16, False).image
    torch.testing.assert_close(plain, checkpointed)
    checkpointed.sum().backward()
    assert generator.cascades[0].eta.grad is not None and torch.isfinite(generator.cascades[0].eta.grad)


def test_physics_stays_fp32_under_autocast():
    kspace, mask = random_input(1, 4, 16, 24)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = build()(kspace, mask, 16, False)
    assert out.complex_image.dtype == torch.complex64 and out.sens.dtype == torch.complex64
    assert out.image.dtype == torch.float32 and torch.isfinite(out.image).all()


def test_config_round_trip_and_errors():
    for config in PRESETS.values():
        as_json = json.loads(json.dumps(config_asdict(config)))  # tuples become lists
        assert config_from_dict(as_json) == config
    with pytest.raises(ConfigError, match="unknown keys"):
        config_from_dict({**config_asdict(TINY), "bogus": 1})
    with pytest.raises(ValueError):
        replace(TINY, adjacent_frames=4)


def test_checkpoint_round_trip_reproduces_outputs(tmp_path):
    generator = build(seed=3)
    path = tmp_path / "weights" / "g.pt"
    sha = save_generator(path, TINY, generator.state_dict(), {"step": 7, "data": "random"})
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == sha and record["step"] == 7
    loaded, loaded_record = load_generator(path)
    assert loaded_record["data"] == "random" and loaded.config == TINY and not loaded.training
    kspace, mask = random_input(1, 4, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(loaded(kspace, mask, 16, True).image, generator(kspace, mask, 16, True).image)


def test_tampered_or_unrecorded_checkpoint_is_refused(tmp_path):
    path = tmp_path / "g.pt"
    save_generator(path, TINY, build().state_dict(), {})
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_generator(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(WeightsUnavailable, match="record"):
        load_generator(path)
    with pytest.raises(WeightsError, match="not found"):
        load_generator(tmp_path / "absent.pt")


def test_info_cli_prints_counts(capsys):
    assert model_cli(["info", "--config", "tiny"]) == 0
    info = json.loads(capsys.readouterr().out)
    with torch.device("meta"):
        trainable, total = parameter_counts(GenreGenerator(TINY))
    assert info["config"] == "tiny" and info["trainable_params"] == trainable and info["total_params"] == total
    assert info["flops_per_output_slice"] == flops_per_output_slice(TINY, 10, 246, 512)
