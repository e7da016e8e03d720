"""Scanner-like simulation: measured coil maps and their augmentation, correlated noise, the hybrid-space crop,
mapping-like contrast, the native-scale training sampler and its input kinds, the allocator setting."""
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from model.coils import rss
from model.fftc import ifft2c
from simulation.anatomy import RealDataMissing
from simulation.contrast import t1_series, t2_series
from simulation.measured_coils import augmented_maps, measured_maps, random_unitary
from simulation.realistic import (Acquisition, acquire, coil_maps, draw_acquisition, noise_factor,
                                 off_resonance_bands, simulate, structured_phase, tissue_phase)
from training.config import PRESETS, TrainConfig
from training.simulated import (KINDS, KT_PATTERNS, SimulatedSampler, SourceSeries, domain_names, phantom_pool,
                                readout_window)

REPO = Path(__file__).resolve().parents[1]


def measured_or_skip() -> np.ndarray:
    try:
        return measured_maps()
    except RealDataMissing as error:
        pytest.skip(f"real multi-coil data absent: {error}")


def test_measured_maps_have_unit_rss_and_differ_between_coils():
    maps = measured_or_skip()
    assert maps.shape == (12, 48, 48) and maps.dtype == np.complex64
    np.testing.assert_allclose(np.sqrt((np.abs(maps) ** 2).sum(0)), 1, atol=1e-4)
    flat = maps.reshape(12, -1)
    gram = np.abs(flat @ flat.conj().T) / np.outer(np.linalg.norm(flat, axis=1), np.linalg.norm(flat, axis=1))
    assert gram[~np.eye(12, dtype=bool)].max() < 0.95          # 12 distinct receive profiles


def test_random_unitary_is_unitary():
    u = random_unitary(7, np.random.default_rng(0))
    np.testing.assert_allclose(u @ u.conj().T, np.eye(7), atol=1e-10)


@pytest.mark.parametrize("nc", [4, 12, 24, 32])
def test_augmented_maps_any_coil_count_and_size(nc):
    base = np.random.default_rng(1).standard_normal((12, 16, 16)).astype(np.complex64) + 1
    maps = augmented_maps(nc, 37, 90, np.random.default_rng(nc), base=base)
    assert maps.shape == (nc, 37, 90) and maps.dtype == np.complex64 and np.isfinite(maps).all()
    if nc % 12 == 0:
        # whole copies mixed by a unitary matrix keep the RSS of the resampled copies (up to the 1/sqrt(copies))
        assert np.sqrt((np.abs(maps) ** 2).sum(0)).mean() > 0.5


def test_noise_factor_is_a_valid_covariance_with_correlation():
    rng = np.random.default_rng(0)
    factor = noise_factor(8, Acquisition(noise_correlation=0.5), rng)
    covariance = factor @ factor.conj().T
    np.testing.assert_allclose(covariance, covariance.conj().T, atol=1e-5)
    assert np.linalg.eigvalsh(covariance).min() > 0
    assert np.real(np.trace(covariance)) == pytest.approx(8, rel=1e-4)
    assert np.abs(covariance[~np.eye(8, dtype=bool)]).max() > 0.01          # the coils' noise is correlated
    white = noise_factor(8, Acquisition(noise_correlation=0.0), rng)
    off = (white @ white.conj().T)[~np.eye(8, dtype=bool)]
    assert np.abs(off).max() < 1e-5


def _draw(magnitude, rng, **changes):
    config = dataclasses.replace(Acquisition(measured_coils=0.0), **changes)
    return draw_acquisition(magnitude, config, rng, n_coils=6)


def test_readout_crop_is_the_hybrid_space_crop_of_the_full_acquisition():
    rng = np.random.default_rng(0)
    magnitude = rng.random((3, 20, 48)).astype(np.float32)
    draw = _draw(magnitude, rng)
    draw.sigma = 0.0
    full = acquire(magnitude, draw, rng)
    cropped = acquire(magnitude, draw, rng, slice(10, 34))
    # the inverse FFT along the readout of the full k-space, cropped, is the crop's k-space inverse-FFT'd along x
    hybrid_full = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(full, dim=-1), dim=-1, norm="ortho"), dim=-1)
    image_full = ifft2c(full)[..., 10:34]
    torch.testing.assert_close(ifft2c(cropped), image_full, atol=1e-5, rtol=1e-4)
    assert hybrid_full.shape[-1] == 48


def test_noise_has_the_drawn_level_and_coil_covariance():
    rng = np.random.default_rng(1)
    magnitude = np.zeros((4, 32, 32), np.float32)
    magnitude[:, 8:24, 8:24] = 1
    draw = _draw(magnitude, rng, noise_correlation=0.6)
    draw.scale = 1.0
    silent = dataclasses.replace(draw, sigma=0.0)
    noise = (acquire(magnitude, draw, np.random.default_rng(5)) - acquire(magnitude, silent, np.random.default_rng(5)))
    samples = noise.permute(1, 0, 2, 3).reshape(6, -1).numpy()
    empirical = samples @ samples.conj().T / samples.shape[1]
    expected = draw.sigma ** 2 * draw.noise @ draw.noise.conj().T
    np.testing.assert_allclose(empirical, expected, atol=0.08 * np.abs(expected).max())


def test_one_coil_is_a_coil_combined_image_or_one_physical_coil_as_drawn():
    combined = coil_maps(1, 24, 40, Acquisition(combined_single=1.0), np.random.default_rng(0))
    np.testing.assert_array_equal(combined, np.ones((1, 24, 40), np.complex64))
    physical = coil_maps(1, 24, 40, Acquisition(combined_single=0.0, measured_coils=0.0), np.random.default_rng(0))
    assert physical.shape == (1, 24, 40) and np.abs(physical).std() > 0.05 * np.abs(physical).mean()
    # more than one coil never draws the combined kind, whatever the switch says
    several = coil_maps(2, 24, 40, Acquisition(combined_single=1.0, measured_coils=0.0), np.random.default_rng(0))
    assert not np.allclose(np.abs(several), 1)


def test_simulate_returns_kspace_and_its_noisy_rss_reference():
    rng = np.random.default_rng(2)
    magnitude = np.random.default_rng(0).random((2, 24, 40)).astype(np.float32)
    kspace, reference = simulate(magnitude, Acquisition(measured_coils=0.0), rng, n_coils=5)
    assert kspace.shape == (2, 5, 24, 40) and reference.shape == (2, 24, 40)
    np.testing.assert_allclose(reference, rss(ifft2c(torch.from_numpy(kspace)), dim=1).numpy(), rtol=1e-5)


def test_acquisition_round_trips_through_the_training_config():
    config = dataclasses.replace(PRESETS["cpu"])
    again = TrainConfig.from_dict(config.to_dict())
    assert again == config and isinstance(again.acquisition, Acquisition)
    # records written before the field existed load with the default
    older = config.to_dict()
    for name in ("acquisition", "kind_weights", "acs_choices", "source", "crop_width", "phantoms"):
        older.pop(name)
    assert TrainConfig.from_dict(older).source == "files"


def test_mapping_like_series_change_contrast_not_anatomy():
    rng = np.random.default_rng(0)
    frame = np.zeros((30, 40), np.float32)
    frame[5:25, 5:20], frame[5:25, 20:35] = 0.3, 0.9
    t1 = t1_series(frame, rng)
    t2 = t2_series(frame, rng)
    assert t1.shape == (9, 30, 40) and t2.shape == (3, 30, 40)
    assert t1.min() >= 0 and t1.max() == pytest.approx(1)
    assert (t1[:, frame == 0] == 0).all()                       # no signal appears outside the anatomy
    ratio = t1[:, 10, 10] / np.maximum(t1[:, 10, 30], 1e-6)
    assert ratio.max() / ratio.min() > 1.5                      # the two tissues' contrast changes over frames
    assert (np.diff(t2[:, 10, 10]) < 0).all()                   # T2 decay


def test_readout_window_overlaps_the_body_and_keeps_width():
    rng = np.random.default_rng(0)
    for _ in range(50):
        window = readout_window(448, 96, rng)
        assert window.stop - window.start == 96 and 0 <= window.start and window.stop <= 448
        assert window.start < 3 * 448 // 4 and window.stop > 448 // 4
    assert readout_window(80, 96, rng) == slice(0, 80) and readout_window(80, 0, rng) == slice(0, 80)


@pytest.fixture(scope="module")
def sampler():
    rng = np.random.default_rng(0)
    series = phantom_pool(2, rng) + [SourceSeries(phantom_pool(1, rng)[0].images, "Center009", "S1/sax1")]
    return SimulatedSampler(series, domain_names(series), Acquisition(measured_coils=0.0, coil_counts=(4,)),
                            {kind: 1.0 for kind in KINDS}, crop_width=64)


@pytest.mark.parametrize("kind", KINDS)
def test_every_input_kind_builds_a_window_with_its_structure(sampler, kind):
    rng = np.random.default_rng(3)
    images, cyclic = sampler.kind_series(sampler.series[0].images, kind, rng)
    pattern = "Uniform" if kind == "uniform" else "ktUniform"
    sample = sampler.build(images, cyclic, pattern, 8, 20, sampler.domains[0], rng)
    _, frames, coils, ny, width = sample.masked_kspace.shape
    assert (frames, coils, width) == (5, 4, 64) and sample.num_acs == 20
    rows = sample.mask[0, :, 0, :, 0]                                           # (F, ny)
    assert rows[:, ny // 2 - 10:ny // 2 + 10].all()                             # the ACS lines are measured
    if kind == "static":
        assert images.shape[0] == 1
        torch.testing.assert_close(sample.masked_kspace[0, 0], sample.masked_kspace[0, 4])
    if kind in ("uniform", "static"):
        assert (rows == rows[:1]).all()                                        # one mask in every frame
    if kind == "kt":
        assert not (rows == rows[:1]).all()                                    # the lattice moves over frames
    if kind == "mapping":
        assert not cyclic and images.shape[0] in (3, 9)
    # the target is the RSS of the fully sampled centre frame and lies within the data range
    assert float(sample.target.max()) <= float(sample.data_range) + 1e-5
    assert torch.isfinite(sample.masked_kspace).all()


def test_draws_cover_kinds_patterns_acs_and_both_parities(sampler):
    rng = np.random.default_rng(4)
    draws = [sampler.draw(rng, (8, 16)) for _ in range(40)]
    assert {d.pattern for d in draws} == {"Uniform", "ktUniform", "ktGaussian", "ktRadial"}
    assert {d.num_acs for d in draws} == {16, 20, 24}
    assert {d.masked_kspace.shape[-2] % 2 for d in draws} == {0, 1}
    assert all(d.num_acs != 24 for d in draws if d.radial)                     # no 2023 radial
    assert {d.acceleration for d in draws if d.pattern == "Uniform"} - {8, 16} <= {4, 10}


def test_simulated_training_runs_from_the_cli(tmp_path):
    """Three steps of the simulated source from the command line, phantoms only (no real data needed)."""
    script = textwrap.dedent(f"""
        import dataclasses, sys
        from training import config
        config.PRESETS["sim-test"] = dataclasses.replace(
            config.PRESETS["cpu"], model="tiny", epochs=1, steps_per_epoch=3, val_samples=2, crop_width=32,
            phantoms=2, acquisition=config.Acquisition(measured_coils=0.0, coil_counts=(4,)))
        from training.__main__ import main
        sys.exit(main(["--preset", "sim-test", "--workers", "1", "--run-dir", {str(tmp_path / 'run')!r}]))
    """)
    env = {"GENRE_REAL_DATA": str(tmp_path / "absent"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "last.pt").is_file()


def test_retaining_freed_memory_removes_the_page_faults_of_large_temporaries():
    script = textwrap.dedent("""
        import resource, sys
        from model.allocator import retain_freed_memory
        took = retain_freed_memory()
        import torch
        x = torch.ones(16 << 20)
        y = x * 2
        del y
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            y = x * 2            # a fresh 64 MiB temporary each time
            del y
        print(int(took), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    results = {}
    for label, env in (("default", {"GENRE_GLIBC_MALLOC_DEFAULTS": "1"}), ("retained", {})):
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", **env}, timeout=120)
        assert done.returncode == 0, done.stderr
        results[label] = tuple(int(v) for v in done.stdout.split())
    assert results["default"][0] == 0 and results["retained"][0] == 1
    # 20 x 64 MiB freshly mapped = 327,680 faults of 4 KiB pages by default (measured: that many); kept memory
    # is mostly reused (measured: a fifth of them)
    assert results["default"][1] > 200_000 and results["retained"][1] < results["default"][1] / 3


def test_native_eval_scores_every_method_on_every_case_and_writes_its_section(tmp_path):
    from benchmarks import native_eval
    from model.checkpoint import save_generator
    from model.config import preset
    from model.generator import GenreGenerator
    from model.inference import GenreReconstructor

    config = preset("tiny")
    weights = tmp_path / "tiny.pt"
    save_generator(weights, config, GenreGenerator(config).state_dict(), {})
    rng = np.random.default_rng(0)
    cine = phantom_pool(1, rng)[0].images[:, 100:140, 168:264]     # a crop through the body
    cases = native_eval.simulated_cases([("held-out cine", "phantom", cine)])
    assert {(c.kind, c.pattern, c.acceleration) for c in cases} == {c[:3] for c in native_eval.SIM_CASES}
    static = next(c for c in cases if c.kind == "static")
    assert static.kspace.shape[0] == 1 and static.frame == 0 and not static.cyclic
    subset = [c for c in cases if (c.kind, c.pattern, c.acceleration) in
              {("kt", "ktRadial", 8), ("static", "Uniform", 8), ("mapping", "ktGaussian", 8)}]
    keep = {0: {}}
    rows = native_eval.evaluate(subset, {"GENRE tiny": GenreReconstructor(weights)}, keep)
    assert len(rows) == 4 * len(subset) and all(np.isfinite([r.psnr, r.ssim]).all() for r in rows)
    assert set(keep[0]) == {"reference", "zero-filled", "CG-SENSE", "GENRE tiny"}
    # the noise-free truth differs from the (noisy) reference by the noise alone, and scores far above zero-filled
    difference = np.abs(subset[0].noise_free - subset[0].reference).mean() / subset[0].reference.mean()
    assert 0 < difference < 0.3
    by_method = {r.method: r.psnr for r in rows if r.pattern == "ktRadial"}
    assert by_method[native_eval.NOISE_FREE] > by_method["zero-filled"] + 3
    # a perfect reconstruction scores far above the zero-filled one with the same scorer
    reference = subset[0].reference
    assert native_eval.scored(reference, reference)[0] > native_eval.scored(reference, keep[0]["zero-filled"])[0]
    text = native_eval.format_section(rows, "cmd", {"cpu": "x", "cores": 2, "usable_cores": 2, "memory_gib": 1,
                                                    "gpu": None, "python": "3", "torch": "2"},
                                      {"GENRE tiny": "tiny.pt"}, 1, ["figures/x.png"])
    assert text.count("| held-out cine |") == 3 and "CG-SENSE" in text and native_eval.NOISE_FREE in text and "figures/x.png" in text
    native_eval.save_figure(tmp_path / "f.png", keep[0], "title")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_native_eval_writes_figures_only_where_told(tmp_path, monkeypatch):
    """A side run (no --figures) must not replace the shipped page's figures; with --figures they are written and
    linked."""
    from benchmarks import native_eval
    from model.checkpoint import save_generator
    from model.config import preset
    from model.generator import GenreGenerator
    from simulation.anatomy import real_data_root

    if not native_eval.real_cases(real_data_root()):
        pytest.skip("no real k-space under ../shared/data/real")
    monkeypatch.setattr(native_eval, "heldout_series", lambda subjects: [])     # the real cases suffice
    config = preset("tiny")
    weights = tmp_path / "tiny.pt"
    save_generator(weights, config, GenreGenerator(config).state_dict(), {})
    monkeypatch.chdir(tmp_path)                        # where the old default (docs/figures) would have written
    common = ["--weights", str(weights), "--no-baselines", "--cases", "organisers"]
    assert native_eval.main([*common, "--out", "side.md"]) == 0
    assert not (tmp_path / "docs").exists() and "![" not in (tmp_path / "side.md").read_text()
    assert native_eval.main([*common, "--out", "page.md", "--figures", "figs"]) == 0
    assert (tmp_path / "figs" / "real-kspace-sax-uniform8.png").stat().st_size > 1000
    assert "](figs/real-kspace-sax-uniform8.png)" in (tmp_path / "page.md").read_text()   # its own, from the page


def test_native_eval_real_kspace_cases_use_the_organisers_mask_file():
    from benchmarks import native_eval
    from simulation.anatomy import real_data_root

    cases = native_eval.real_cases(real_data_root())
    if not cases:
        pytest.skip("the real 1-coil SAX k-space is absent")
    sax = [c for c in cases if c.name == "cmrx24_demo_sax_1coil"]
    assert sax[0].kspace.shape == (1, 1, 246, 512) and sax[0].mask.shape == (1, 246, 512)
    assert 0.15 < sax[0].mask.mean() < 0.22                     # Uniform 8 + ACS: 18.3% of the samples
    assert len(sax) == len(native_eval.REAL_CASES)
    twix = [c for c in cases if c.name == "gre.dat"]
    if twix:                                                     # twixtools installed
        assert twix[0].kspace.shape == (1, 2, 160, 320)          # 2 coils, readout oversampling kept
        image = rss(ifft2c(torch.from_numpy(twix[0].kspace[0])), dim=0).numpy()
        columns = image.sum(0)
        assert columns[:40].sum() < 0.1 * columns.sum()          # the object sits in the central readout half


def test_train_kinds_shift_the_training_draws_and_leave_the_validation_windows(monkeypatch):
    from training import trainer as trainer_module
    from training.__main__ import build_config, parse_args
    rng = np.random.default_rng(0)
    real = [SourceSeries(rng.random((4, 24, 32)).astype(np.float32), centre, f"{centre}_P{i}/cine_sax1")
            for centre in ("Center001", "Center002") for i in range(5)]
    monkeypatch.setattr(trainer_module, "real_cine_pool", lambda keep: real)
    args = parse_args(["--run-dir", "x", "--train-kinds", "kt=0.2", "uniform=0.8"])
    config = dataclasses.replace(build_config(args), phantoms=1)
    assert config.train_kind_weights == (("kt", 0.2), ("uniform", 0.8))
    assert TrainConfig.from_dict(config.to_dict()) == config
    _, train, val, _ = trainer_module.simulated_samplers(config)
    assert dict(zip(train.kinds, train.kind_p)) == {"kt": pytest.approx(0.2), "uniform": pytest.approx(0.8)}
    assert dict(zip(val.kinds, val.kind_p)) == pytest.approx(dict(config.kind_weights))
    _, train, _, _ = trainer_module.simulated_samplers(dataclasses.replace(config, train_kind_weights=()))
    assert dict(zip(train.kinds, train.kind_p)) == pytest.approx(dict(config.kind_weights))
    for bad in (["kt"], ["kt=0"], ["kt=x"]):
        with pytest.raises(SystemExit, match="--train-kinds"):
            build_config(parse_args(["--run-dir", "x", "--train-kinds", *bad]))


def test_tissue_phase_jumps_at_tissue_boundaries_and_is_off_by_default():
    image = np.full((96, 128), 0.05, np.float32)
    image[8:44, 10:60], image[52:90, 70:120] = 1.0, 0.5              # two "tissues" on a dark background
    offsets = [tissue_phase(image, np.random.default_rng(seed)) for seed in range(12)]
    for offset in offsets:                                           # one offset per region, away from its edges
        for region in (offset[18:34, 20:50], offset[62:80, 80:110]):   # 10 px (> 3 sigma) inside
            assert np.ptp(region) < 1e-9
    jumps = [abs(np.angle(np.exp(1j * (o[26, 35] - o[70, 95])))) for o in offsets]
    assert max(jumps) > 2.0 and min(jumps) < 1.5                      # some boundaries flip by about pi, some not
    # off by default: the phase (and so every later draw) of the stages before it is unchanged
    magnitude = np.stack([image] * 3)
    plain = structured_phase(magnitude, Acquisition(), np.random.default_rng(3))
    np.testing.assert_array_equal(plain, structured_phase(magnitude, Acquisition(tissue_phase=0.0),
                                                          np.random.default_rng(3)))
    tied = structured_phase(magnitude, Acquisition(tissue_phase=1.0), np.random.default_rng(3))
    np.testing.assert_allclose(np.ptp(tied - plain, axis=0), 0, atol=1e-5)   # the same offsets in every frame
    assert np.abs(tied - plain).max() > 0.1


def test_off_resonance_bands_darken_where_the_sign_flips_and_are_off_by_default():
    bands = [off_resonance_bands(96, 128, np.random.default_rng(seed)) for seed in range(12)]
    darkest_at_flips, banded = [], 0
    for factor in bands:
        assert factor.shape == (96, 128) and factor.dtype == np.float32 and np.abs(factor).max() <= 1 + 1e-6
        assert np.median(np.abs(factor)) > 0.95                       # most of the image is in the pass band
        flips = np.sign(factor[:, 1:]) != np.sign(factor[:, :-1])    # sign changes along the readout
        banded += bool(flips.any())
        darkest_at_flips.append(np.minimum(np.abs(factor[:, 1:]), np.abs(factor[:, :-1]))[flips])
    assert banded >= 8                                                 # most draws have at least one band
    assert np.median(np.concatenate(darkest_at_flips)) < 0.3          # a flip sits in a dark band
    # off by default, and drawn last: every other choice of a draw is the same with it on
    magnitude = np.random.default_rng(0).random((3, 48, 64)).astype(np.float32)
    plain = draw_acquisition(magnitude, Acquisition(), np.random.default_rng(5))
    unchanged = draw_acquisition(magnitude, Acquisition(off_resonance_bands=0.0), np.random.default_rng(5))
    on = draw_acquisition(magnitude, Acquisition(off_resonance_bands=1.0), np.random.default_rng(5))
    for name in ("maps", "phase", "shading", "noise"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(unchanged, name))
    np.testing.assert_array_equal(on.maps, plain.maps)
    np.testing.assert_array_equal(on.noise, plain.noise)
    assert (on.sigma, on.scale) == (plain.sigma, plain.scale)
    assert on.phase.dtype == np.float32 and on.shading.dtype == np.float32
    ratio = on.shading / plain.shading
    assert ratio.min() >= 0 and ratio.max() <= 1 + 1e-6 and ratio.min() < 0.5
    flip = np.angle(np.exp(1j * (on.phase - plain.phase).astype(np.float64)))   # 0 or pi, the same every frame
    assert np.all((np.abs(flip) < 1e-4) | (np.abs(np.abs(flip) - np.pi) < 1e-4)) and (np.abs(flip) > 3).any()
    np.testing.assert_allclose(np.ptp(np.cos(flip), axis=0), 0, atol=1e-6)


def test_acquisition_overrides_name_fields_and_parse_their_types():
    acquisition = Acquisition().overridden(["tissue_phase=0.5", "snr=10,60", "coil_counts=4,8"])
    assert acquisition == dataclasses.replace(Acquisition(), tissue_phase=0.5, snr=(10.0, 60.0), coil_counts=(4, 8))
    assert Acquisition().overridden([]) == Acquisition()
    for bad in ("tissue_phase", "colour=1", "snr=a,b", "coil_counts=4.5", "to_dict=1"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            Acquisition().overridden([bad])


def test_train_acquisition_changes_the_training_draws_and_leaves_the_validation_windows(monkeypatch):
    from training import trainer as trainer_module
    from training.__main__ import build_config, parse_args
    rng = np.random.default_rng(0)
    real = [SourceSeries(rng.random((4, 24, 32)).astype(np.float32), centre, f"{centre}_P{i}/cine_sax1")
            for centre in ("Center001", "Center002") for i in range(5)]
    monkeypatch.setattr(trainer_module, "real_cine_pool", lambda keep: real)
    config = dataclasses.replace(build_config(parse_args(["--run-dir", "x", "--train-acquisition",
                                                          "tissue_phase=0.5"])), phantoms=1)
    assert config.train_acquisition == dataclasses.replace(config.acquisition, tissue_phase=0.5)
    assert TrainConfig.from_dict(config.to_dict()) == config
    _, train, val, _ = trainer_module.simulated_samplers(config)
    assert train.acquisition.tissue_phase == 0.5 and val.acquisition == config.acquisition
    _, train, _, _ = trainer_module.simulated_samplers(dataclasses.replace(config, train_acquisition=None))
    assert train.acquisition == config.acquisition
    with pytest.raises(SystemExit, match="--train-acquisition"):
        build_config(parse_args(["--run-dir", "x", "--train-acquisition", "phase=1"]))


def test_train_kt_weights_the_training_trajectories_and_keeps_the_earlier_stream(monkeypatch):
    from training import trainer as trainer_module
    from training.__main__ import build_config, parse_args
    rng = np.random.default_rng(0)
    real = [SourceSeries(rng.random((4, 48, 32)).astype(np.float32), centre, f"{centre}_P{i}/cine_sax1")
            for centre in ("Center001", "Center002") for i in range(5)]
    monkeypatch.setattr(trainer_module, "real_cine_pool", lambda keep: real)
    config = dataclasses.replace(build_config(parse_args(["--run-dir", "x", "--train-kinds", "kt=1",
                                                          "--train-kt", "ktUniform=3", "ktRadial=1"])), phantoms=1)
    assert config.train_kt_weights == (("ktUniform", 3.0), ("ktRadial", 1.0))
    assert TrainConfig.from_dict(config.to_dict()) == config
    _, train, val, _ = trainer_module.simulated_samplers(config)
    assert val.kt_p is None
    draws = np.random.default_rng(1)
    patterns = [train.draw(draws, (8,)).pattern for _ in range(40)]
    assert set(patterns) == {"ktUniform", "ktRadial"} and patterns.count("ktUniform") > 20
    for bad in (["ktUniform"], ["ktUniform=0"], ["Uniform=1"]):
        with pytest.raises(SystemExit, match="--train-kt"):
            build_config(parse_args(["--run-dir", "x", "--train-kt", *bad]))
    # without the option a seed draws the patterns, AFs and ACS sizes it drew for the stages before it (the
    # acquisition, which depends on whether ../shared is present, left out)
    sampler = SimulatedSampler(real[:1], ["Center001:Cine", "Center001:Mapping"], Acquisition(),
                               {"kt": 0.4, "uniform": 0.2, "static": 0.2, "mapping": 0.2})
    monkeypatch.setattr(sampler, "build", lambda images, cyclic, pattern, factor, num_acs, domain, rng:
                        (pattern, factor, num_acs))
    draws = np.random.default_rng(5)
    assert [sampler.draw(draws, (8, 16)) for _ in range(12)] == [
        ("Uniform", 4, 20), ("ktUniform", 8, 24), ("Uniform", 10, 20), ("Uniform", 4, 24), ("ktGaussian", 16, 16),
        ("Uniform", 8, 24), ("ktRadial", 16, 16), ("ktRadial", 8, 20), ("ktGaussian", 16, 16), ("ktUniform", 8, 16),
        ("ktGaussian", 16, 20), ("ktGaussian", 16, 20)]


def test_validation_by_kind_draws_each_kind_from_the_validation_subjects_only(monkeypatch):
    from benchmarks.validation_by_kind import kind_windows
    from training import trainer as trainer_module
    rng = np.random.default_rng(1)
    real = [SourceSeries(rng.random((6, 120, 48)).astype(np.float32), "Center001", f"Center001_P{i}/cine_sax1")
            for i in range(5)]
    monkeypatch.setattr(trainer_module, "real_cine_pool", lambda keep: real)
    config = dataclasses.replace(PRESETS["cpu"], phantoms=1, crop_width=32)
    windows = kind_windows(3, config)
    again = kind_windows(3, config)
    assert sorted(windows) == sorted(KINDS) and all(len(w) == 3 for w in windows.values())
    for kind, samples in windows.items():
        for sample, same in zip(samples, again[kind]):
            torch.testing.assert_close(sample.masked_kspace, same.masked_kspace)     # fixed windows
            rows = sample.mask[0, :, 0, :, 0]
            assert (sample.pattern == "Uniform") == (kind == "uniform") or kind in ("static", "mapping")
            if kind in ("uniform", "static"):
                assert (rows == rows[:1]).all()
            if kind == "kt":
                assert sample.pattern.startswith("kt")
                assert sample.radial or not (rows == rows[:1]).all()             # the lattice moves over frames
    # the validation subject (one of five at val_fraction 0.2) is the only source: no phantom domain
    domains = trainer_module.simulated_samplers(config)[0]
    assert {sample.domain for samples in windows.values() for sample in samples} <= {
        domains.index("Center001:Cine"), domains.index("Center001:Mapping")}
    # --trajectories: a window set per k-t trajectory, each of its pattern only; the kinds' windows unchanged
    more = kind_windows(3, config, trajectories=True)
    assert list(more) == list(KINDS) + [f"kt:{p}" for p in KT_PATTERNS]
    for kind in KINDS:
        for sample, same in zip(windows[kind], more[kind]):
            torch.testing.assert_close(sample.masked_kspace, same.masked_kspace)
    for pattern in KT_PATTERNS:
        assert {sample.pattern for sample in more[f"kt:{pattern}"]} == {pattern}


def test_native_eval_cases_of_a_series_do_not_depend_on_how_many_subjects_run(monkeypatch):
    from benchmarks import native_eval
    monkeypatch.setattr(native_eval, "SIM_CASES", native_eval.SIM_CASES[:2])
    rng = np.random.default_rng(1)
    cines = [phantom_pool(1, rng)[0].images[:, 100:132, 168:232] for _ in range(2)]
    one = native_eval.simulated_cases([("held-out cine", "a", cines[0]), ("unseen centre", "b", cines[1])])
    two = native_eval.simulated_cases([("held-out cine", "a", cines[0]), ("held-out cine", "a2", cines[1]),
                                       ("unseen centre", "b", cines[1]), ("unseen centre", "b2", cines[0])])
    kept = [c for c in two if c.name in ("a", "b")]
    assert len(kept) == len(one) == 4
    for mine, theirs in zip(one, kept):
        assert (mine.group, mine.name, mine.pattern) == (theirs.group, theirs.name, theirs.pattern)
        np.testing.assert_array_equal(mine.kspace, theirs.kspace)
        np.testing.assert_array_equal(mine.mask, theirs.mask)
    # an added series draws an acquisition of its own: b2 is a's anatomy, acquired differently
    a, b2 = one[0].kspace, next(c for c in two if c.name == "b2").kspace
    assert a.shape != b2.shape or not np.allclose(a, b2)
    # --acquisition: the same anatomy, another acquisition (and, drawn after it, other masks)
    tied = native_eval.simulated_cases([("held-out cine", "a", cines[0]), ("unseen centre", "b", cines[1])],
                                       acquisition=Acquisition(tissue_phase=1.0))
    for mine, other in zip(one, tied):
        assert mine.kspace.shape == other.kspace.shape and not np.allclose(mine.kspace, other.kspace)
