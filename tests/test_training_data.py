"""Training data at release layout and scale: the three official training trees (several at once), slice-lazy
reads, the shape index, release masks, unreadable files, worker seeding and the CLI's budgets."""
import csv
import logging
import os

import h5py
import numpy as np
import pytest
import torch

from challenge.masks import make_mask
from challenge.matio import read_kspace, read_kspace_slice, write_kspace_v5, write_kspace_v73, write_mask_v73
from model.coils import rss
from model.fftc import fft2c, ifft2c
from training import slice_index
from training.__main__ import main as train_main
from training.dataset import WindowSampler
from training.layouts import LayoutError, find_training_files
from training.loader import epoch_loader
from training.slice_index import SliceReader, build_index

NT, NZ, NC, NY, NX = 6, 2, 4, 24, 32


def volume(rng: np.random.Generator, nt: int = NT, four_d: bool = False) -> np.ndarray:
    """Smooth coil images as k-space (nt, nz, nc, ny, nx) complex64, or (nz, nc, ny, nx) when four_d."""
    y, x = np.mgrid[:NY, :NX]
    blob = ((y - NY / 2) ** 2 + (x - NX / 2) ** 2 < 40).astype(np.float32)
    coils = np.exp(-((y[None] - np.array([0, 0, NY, NY])[:, None, None]) ** 2) / 400.0)       # (nc, ny, nx)
    images = (0.3 + blob + 0.05 * rng.standard_normal((nt, NZ, 1, NY, NX))) * coils
    kspace = fft2c(torch.from_numpy(images.astype(np.complex64))).numpy()
    return kspace[0] if four_d else kspace


def write_2023(root, rng):
    for modality, base, patient in (("Cine", "cine_sax", "P001"), ("Cine", "cine_sax", "P002"),
                                    ("Mapping", "T1map", "P001")):
        ts = root / "MultiCoil" / modality / "TrainingSet"
        write_kspace_v73(ts / "FullSample" / patient / f"{base}.mat", "kspace_full", volume(rng))
        for factor in (4, 8):
            write_mask_v73(ts / f"AccFactor{factor:02d}" / patient / f"{base}_mask.mat", f"mask{factor:02d}",
                           make_mask("Uniform", 1, NY, NX, factor, 8, rng)[0])
    return root


def write_2024(root, rng):
    ts = root / "MultiCoil" / "Cine" / "TrainingSet"
    for patient in ("P001", "P002"):
        write_kspace_v73(ts / "FullSample" / patient / "cine_sax.mat", "kspace_full", volume(rng))
        write_mask_v73(ts / "Mask_Task2" / patient / "cine_sax_mask_ktRadial8.mat", "mask",
                       make_mask("ktRadial", NT, NY, NX, 8, 8, rng))
        write_mask_v73(ts / "Mask_Task1" / patient / "cine_sax_mask_Uniform4.mat", "mask",
                       make_mask("Uniform", 1, NY, NX, 4, 8, rng)[0])
    bb = root / "MultiCoil" / "BlackBlood" / "TrainingSet" / "FullSample" / "P003" / "blackblood.mat"
    write_kspace_v73(bb, "kspace_full", volume(rng, four_d=True))                      # 4-D: no time axis
    return root


def write_2025(root, rng):
    for center, vendor in (("Center001", "UIH_30T_umr780"), ("Center005", "UIH_15T_umr670")):
        for patient in ("P001", "P002"):
            ts = root / "MultiCoil" / "Cine" / "TrainingSet"
            write_kspace_v73(ts / "FullSample" / center / vendor / patient / "cine_lax_3ch.mat", "kspace",
                             volume(rng))
            write_mask_v73(ts / "Mask_TaskAll" / center / vendor / patient / "cine_lax_3ch_mask_ktGaussian8.mat",
                           "mask", make_mask("ktGaussian", NT, NY, NX, 8, 8, rng))
    return root


WRITERS = {"2023": write_2023, "2024": write_2024, "2025": write_2025}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    rng = np.random.default_rng(0)
    return {year: write(tmp_path_factory.mktemp(f"cmr{year}"), rng) for year, write in WRITERS.items()}


def test_every_release_layout_is_read_at_once_with_its_domains_and_masks(releases):
    files = find_training_files([releases["2023"], releases["2024"], releases["2025"]])
    assert len(files) == 3 + 3 + 4
    assert {f.domain_name for f in files} == {
        "CMRxRecon2023:Cine", "CMRxRecon2023:Mapping", "CMRxRecon2024:Cine", "CMRxRecon2024:BlackBlood",
        "Center001:Cine", "Center005:Cine"}
    by_name = {(f.year, f.patient, f.base, f.center): f for f in files}
    sax23 = by_name[("2023", "P001", "cine_sax", "CMRxRecon2023")]
    assert [(m.pattern, m.factor, m.num_acs) for m in sax23.masks] == [("Uniform", 4, 24), ("Uniform", 8, 24)]
    sax24 = by_name[("2024", "P001", "cine_sax", "CMRxRecon2024")]
    assert {(m.pattern, m.factor, m.num_acs) for m in sax24.masks} == {("Uniform", 4, 16), ("ktRadial", 8, 16)}
    assert by_name[("2024", "P003", "blackblood", "CMRxRecon2024")].masks == ()
    lax25 = by_name[("2025", "P002", "cine_lax_3ch", "Center005")]
    assert lax25.vendor == "UIH_15T_umr670" and lax25.cyclic
    assert [(m.pattern, m.factor, m.num_acs) for m in lax25.masks] == [("ktGaussian", 8, 20)]
    assert len({f.subject for f in files}) == 9      # subjects stay apart across releases


def test_a_file_in_an_unknown_layout_is_named_with_the_layouts_expected(tmp_path):
    bad = tmp_path / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample" / "Center001" / "P001" / "cine_sax.mat"
    write_kspace_v73(bad, "kspace_full", volume(np.random.default_rng(0)))
    with pytest.raises(LayoutError, match=r"Center001/P001/cine_sax\.mat: not in a known training layout.*"
                                          r"FullSample/P###/<file>\.mat \(2023, 2024\)"):
        find_training_files(tmp_path)
    assert train_main(["--data", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--preset", "smoke"]) == 2


def test_a_slice_is_one_hyperslab_equal_to_the_volumes_slice(releases, monkeypatch):
    path = releases["2023"] / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample" / "P001" / "cine_sax.mat"
    whole = read_kspace(path).kspace
    selections = []
    original = h5py.Dataset.__getitem__

    def recording(self, args, *rest, **kw):
        selections.append(args)
        return original(self, args, *rest, **kw)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    np.testing.assert_array_equal(read_kspace_slice(path, 1), whole[:, 1])
    assert selections == [(slice(None), 1)]                 # frames x one slice, never the volume
    four_d = releases["2024"] / "MultiCoil" / "BlackBlood" / "TrainingSet" / "FullSample" / "P003" / "blackblood.mat"
    np.testing.assert_array_equal(read_kspace_slice(four_d, 0), read_kspace(four_d).kspace[:, 0])
    assert read_kspace_slice(four_d, 0).shape == (1, NC, NY, NX)


def test_training_windows_never_read_a_whole_v73_volume(releases, monkeypatch):
    files, reader = build_index(find_training_files(list(releases.values())))
    monkeypatch.setattr(slice_index, "read_kspace", lambda *a, **k: pytest.fail("a whole volume was read"))
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform", "ktRadial"), 8,
                            reader=reader)
    rng = np.random.default_rng(0)
    shapes = {tuple(sampler.draw(rng, (8,)).masked_kspace.shape) for _ in range(12)}
    assert shapes == {(1, 5, NC, NY, NX)}


def test_mat_v5_files_are_read_whole_once_per_process(tmp_path, monkeypatch):
    path = tmp_path / "cine_sax.mat"
    write_kspace_v5(path, "kspace_full", volume(np.random.default_rng(1)))
    calls = []
    monkeypatch.setattr(slice_index, "read_kspace", lambda *a, **k: calls.append(a) or read_kspace(*a, **k))
    reader = SliceReader()
    first, second = reader.read_slice(path, 0), reader.read_slice(path, 1)
    assert len(calls) == 1
    np.testing.assert_array_equal(second, read_kspace(path).kspace[:, 1])
    assert first.shape == (NT, NC, NY, NX)


def test_the_shape_index_is_cached_and_reread_only_for_changed_files(releases, tmp_path, monkeypatch):
    files = find_training_files(releases["2025"])
    cache = tmp_path / "data_index.json"
    _, reader = build_index(files, cache)
    assert cache.exists() and reader.shape(files[0].path) == (NT, NZ, NC, NY, NX)
    monkeypatch.setattr(slice_index, "kspace_info", lambda path, key=None: pytest.fail(f"{path} re-read"))
    again, cached = build_index(files, cache)
    assert again == files and cached.shapes == reader.shapes
    os.utime(files[0].path, ns=(0, 0))
    with pytest.raises(pytest.fail.Exception, match="re-read"):
        build_index(files, cache)


def test_unreadable_files_are_skipped_with_a_log_line_never_a_crash(releases, tmp_path, caplog):
    rng = np.random.default_rng(2)
    root = write_2024(tmp_path / "tree", rng)
    broken = root / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample" / "P009" / "cine_sax.mat"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a MAT file at all")
    with caplog.at_level(logging.WARNING, logger="genre.train.data"):
        files, reader = build_index(find_training_files(root))
    assert broken not in {f.path for f in files} and len(files) == 3
    assert f"skipped {broken}" in caplog.text
    # a file that breaks after indexing (truncated mid-run) is left out of later draws
    victim = files[0].path
    data = victim.read_bytes()
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform",), 8, reader=reader)
    victim.write_bytes(data[:2048])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genre.train.data"):
        drawn = [sampler.draw(np.random.default_rng(seed), (8,)) for seed in range(10)]
    assert len(drawn) == 10 and f"skipped {victim} for the rest of this run" in caplog.text
    assert victim not in {f.path for fs in sampler.by_domain.values() for f in fs}


def test_release_masks_are_the_releases_own(releases):
    files, reader = build_index(find_training_files([releases["2024"], releases["2025"]]))
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform",), 8, reader=reader,
                            masks="release")
    assert not any(f.base == "blackblood" for fs in sampler.by_domain.values() for f in fs)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(12):
        sample = sampler.draw(rng, (8,))
        seen.add((sample.pattern, sample.acceleration, sample.num_acs))
        assert torch.all(sample.masked_kspace[sample.mask.expand_as(sample.masked_kspace) == 0] == 0)
    # AF 8 is in the curriculum, so the 2024 Uniform4 mask is not drawn
    assert seen == {("ktRadial", 8, 16), ("ktGaussian", 8, 20)}
    radial = next(m for f in files for m in f.masks if m.pattern == "ktRadial")
    mask = WindowSampler.release_mask_array(radial, NT, NY, NX)
    assert mask.shape == (NT, NY, NX) and not np.array_equal(mask[0], mask[1])   # k-t: differs per frame


def windows(sampler, workers, rank=0, epoch=0, steps=6):
    return [s.target for s in epoch_loader(sampler, (8,), steps, seed=3, rank=rank, epoch=epoch, workers=workers)]


def test_windows_reproduce_per_seed_rank_epoch_and_worker_count(releases):
    files, reader = build_index(find_training_files(releases["2025"]))
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktGaussian",), 8, reader=reader)
    first, again = windows(sampler, 2), windows(sampler, 2)
    assert len(first) == 6 and all(torch.equal(a, b) for a, b in zip(first, again))
    in_process = windows(sampler, 0)
    assert all(torch.equal(a, b) for a, b in zip(in_process, windows(sampler, 0)))
    for other in (windows(sampler, 2, rank=1), windows(sampler, 2, epoch=1)):
        assert not all(torch.equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("year", ["2023", "2024", "2025"])
def test_the_cli_runs_three_smoke_steps_on_each_release_layout(releases, tmp_path, year):
    run = tmp_path / "run"
    assert train_main(["--data", str(releases[year]), "--preset", "smoke", "--max-steps", "3", "--run-dir",
                       str(run), "--device", "cpu"]) == 0
    assert len(list(csv.DictReader(open(run / "train_log.csv")))) == 3
    assert (run / "last.pt").exists() and (run / "data_index.json").exists()


def test_the_cli_budgets_workers_and_resume_do_what_they_say(releases, tmp_path):
    run = tmp_path / "run"
    roots = [str(releases["2024"]), str(releases["2025"])]
    base = ["--data", *roots, "--preset", "smoke", "--run-dir", str(run), "--device", "cpu", "--workers", "2"]
    assert train_main(base + ["--max-steps", "2"]) == 0
    assert train_main(base + ["--max-steps", "4", "--resume"]) == 0
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    state = torch.load(run / "last.pt", weights_only=True)
    assert int(state["step"]) == 4 and int(state["epoch"]) == 2      # each budget stop ends its epoch
    timed = tmp_path / "timed"
    assert train_main(["--data", *roots, "--preset", "smoke", "--run-dir", str(timed), "--device", "cpu",
                       "--max-minutes", "0"]) == 0
    assert len(list(csv.DictReader(open(timed / "train_log.csv")))) == 1   # the budget is checked after each step
    assert train_main(["--data", *roots, "--preset", "smoke", "--run-dir", str(tmp_path / "none"),
                       "--resume"]) == 2


def test_the_slice_peak_is_the_rss_maximum_over_every_frame(releases):
    files, reader = build_index(find_training_files(releases["2024"]))
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktUniform",), 8, reader=reader)
    odd = np.random.default_rng(5).standard_normal((3, 2, 23, 31)).astype(np.complex64)    # odd sizes too
    for kspace in (reader.read_slice(files[0].path, 1), odd):
        expected = float(rss(ifft2c(torch.from_numpy(kspace))).amax())
        assert sampler.slice_peak(files[0], kspace, id(kspace)) == pytest.approx(expected, rel=1e-5)


def test_several_windows_per_slice_read_pay_the_read_once(releases):
    files, reader = build_index(find_training_files(releases["2025"]))
    reads = []
    read_slice = reader.read_slice
    reader.read_slice = lambda path, z: reads.append((path, z)) or read_slice(path, z)
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktGaussian",), 8, reader=reader,
                            windows_per_read=3)
    rng = np.random.default_rng(4)
    drawn = [sampler.draw(rng, (8, 16)) for _ in range(7)]
    assert len(reads) == 3                        # windows 1-3, 4-6 and 7
    assert len({(s.acceleration, float(s.data_range)) for s in drawn[:3]}) > 1   # fresh mask, AF, frame each
    with pytest.raises(ValueError, match="windows_per_read"):
        WindowSampler(files, ["Center001:Cine"], ("ktGaussian",), 8, windows_per_read=0)


def test_drawn_masks_are_the_official_ones_and_only_ktgaussian_uses_the_random_stream(releases):
    files, reader = build_index(find_training_files(releases["2025"]))
    sampler = WindowSampler(files, sorted({f.domain_name for f in files}), ("ktRadial",), 8, reader=reader)
    for pattern in ("Uniform", "ktUniform", "ktRadial", "ktRadial"):               # the second ktRadial is kept
        rng = np.random.default_rng(3)
        mask = sampler.drawn_mask(pattern, 5, 20, 24, 8, rng)
        assert mask.dtype == np.float32
        np.testing.assert_array_equal(mask, make_mask(pattern, 5, 20, 24, 8, 8, np.random.default_rng(0)))
        assert rng.integers(1 << 30) == np.random.default_rng(3).integers(1 << 30)  # stream untouched
    rng = np.random.default_rng(3)
    first, second = (sampler.drawn_mask("ktGaussian", 5, 20, 24, 8, rng) for _ in range(2))
    np.testing.assert_array_equal(first, make_mask("ktGaussian", 5, 20, 24, 8, 8, np.random.default_rng(3)))
    assert not np.array_equal(first, second)
