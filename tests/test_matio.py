"""MAT I/O: v7.3 and v5 k-space and masks in h5py order, atomic validated outputs, clear errors."""
import h5py
import numpy as np
import pytest
import scipy.io

from challenge.matio import (MatReadError, OutputInvalid, kspace_info, read_kspace, read_mask, validate_output,
                             write_kspace_v5, write_kspace_v73, write_mask_v73, write_output)


def random_kspace(shape, dtype=np.complex64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("shape", [(3, 2, 4, 7, 9), (2, 1, 3, 8, 6), (2, 4, 5, 11)])
def test_v73_round_trip_keeps_h5py_order_and_compound_fields(tmp_path, shape):
    kspace = random_kspace(shape)
    write_kspace_v73(tmp_path / "k.mat", "kus", kspace)
    with h5py.File(tmp_path / "k.mat", "r") as handle:
        assert handle["kus"].shape == shape
        assert handle["kus"].dtype.names == ("real", "imag")
    assert open(tmp_path / "k.mat", "rb").read(10) == b"MATLAB 7.3"
    volume = read_kspace(tmp_path / "k.mat")
    expected = kspace if len(shape) == 5 else kspace[None]
    np.testing.assert_array_equal(volume.kspace, expected)
    assert volume.has_time_axis == (len(shape) == 5)
    assert kspace_info(tmp_path / "k.mat") == (expected.shape, len(shape) == 5, "kus")


def test_float64_compound_is_read_as_complex64(tmp_path):
    kspace = random_kspace((2, 1, 2, 5, 7), np.complex128)
    write_kspace_v73(tmp_path / "k.mat", "kspace_full", kspace)
    volume = read_kspace(tmp_path / "k.mat", "kspace_full")
    assert volume.kspace.dtype == np.complex64
    np.testing.assert_allclose(volume.kspace, kspace, rtol=1e-6)


def test_v5_file_is_transposed_to_h5py_order(tmp_path):
    kspace = random_kspace((3, 2, 4, 7, 9))
    write_kspace_v5(tmp_path / "k.mat", "kus", kspace)
    assert scipy.io.loadmat(tmp_path / "k.mat")["kus"].shape == (9, 7, 4, 2, 3)   # MATLAB order on disk
    np.testing.assert_array_equal(read_kspace(tmp_path / "k.mat").kspace, kspace)


def test_slices_reads_only_the_requested_slices(tmp_path):
    kspace = random_kspace((2, 5, 3, 6, 8))
    write_kspace_v73(tmp_path / "k.mat", "kus", kspace)
    np.testing.assert_array_equal(read_kspace(tmp_path / "k.mat", slices=slice(1, 3)).kspace, kspace[:, 1:3])


def test_key_errors_name_the_file_and_the_variables(tmp_path):
    path = tmp_path / "k.mat"
    scipy.io.savemat(path, {"a": np.ones((2, 3, 4, 5)), "b": np.ones((2, 3, 4, 5))})
    with pytest.raises(MatReadError, match=r"k\.mat.*a, b"):
        read_kspace(path)
    with pytest.raises(MatReadError, match="no variable 'kus'"):
        read_kspace(path, "kus")
    kspace = random_kspace((1, 1, 2, 4, 4))
    scipy.io.savemat(path, {"kus": kspace.T, "extra": np.ones(3)})
    np.testing.assert_array_equal(read_kspace(path, "kus").kspace, kspace)   # extra keys are fine


@pytest.mark.parametrize("content", [b"", b"not a mat file at all", b"MATLAB 5.0 MAT-file" + b"\0" * 50])
def test_junk_named_mat_is_a_clear_error(tmp_path, content):
    path = tmp_path / "junk.mat"
    path.write_bytes(content)
    with pytest.raises(MatReadError, match="junk.mat"):
        read_kspace(path)


def test_truncated_hdf5_is_a_clear_error(tmp_path):
    write_kspace_v73(tmp_path / "k.mat", "kus", random_kspace((2, 2, 4, 16, 16)))
    data = (tmp_path / "k.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(MatReadError, match="cut.mat"):
        read_kspace(tmp_path / "cut.mat")


def test_real_data_is_accepted_with_a_warning(tmp_path):
    scipy.io.savemat(tmp_path / "k.mat", {"kus": np.ones((4, 3, 2, 1, 2))})
    with pytest.warns(UserWarning, match="real-valued"):
        volume = read_kspace(tmp_path / "k.mat")
    assert volume.kspace.dtype == np.complex64 and volume.warnings


def test_masks_v73_and_v5(tmp_path):
    mask = np.random.default_rng(0).random((3, 7, 9)) > 0.5
    write_mask_v73(tmp_path / "m.mat", "mask", mask)
    with h5py.File(tmp_path / "m.mat", "r") as handle:
        assert handle["mask"].dtype == np.float64 and handle["mask"].shape == (3, 7, 9)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.mat"), mask)
    scipy.io.savemat(tmp_path / "m5.mat", {"mask04": mask[0].T.astype(float)})
    np.testing.assert_array_equal(read_mask(tmp_path / "m5.mat", "mask04"), mask[0])


def test_write_output_is_atomic_float32_v5(tmp_path):
    array = np.random.default_rng(0).random((5, 4, 2, 3)).astype(np.float64)
    write_output(tmp_path / "a" / "b" / "out.mat", array)
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out.mat"]
    loaded = scipy.io.loadmat(tmp_path / "a" / "b" / "out.mat")["img4ranking"]
    assert loaded.dtype == np.float32 and loaded.shape == (5, 4, 2, 3)
    validate_output(tmp_path / "a" / "b" / "out.mat", (5, 4, 2, 3))


@pytest.mark.parametrize("content, reason", [
    ({"img4ranking": np.ones((4, 3), np.float32)}, "shape"),
    ({"img4ranking": np.full((4, 3, 2), np.nan, np.float32)}, "non-finite"),
    ({"img4ranking": np.zeros((4, 3, 2), np.float32)}, "all zero"),
    ({"img4ranking": np.ones((4, 3, 2), np.float64)}, "dtype"),
    ({"other": np.ones((4, 3, 2), np.float32)}, "img4ranking"),
])
def test_validate_output_catches_what_the_scorer_would_lose(tmp_path, content, reason):
    scipy.io.savemat(tmp_path / "o.mat", content)
    with pytest.raises(OutputInvalid, match=reason):
        validate_output(tmp_path / "o.mat", (4, 3, 2))


def test_native_complex_hdf5_and_v5_info(tmp_path):
    kspace = random_kspace((2, 3, 2, 5, 4))
    with h5py.File(tmp_path / "native.mat", "w") as handle:
        handle["kspace"] = kspace                                      # h5py's own complex compound
    np.testing.assert_array_equal(read_kspace(tmp_path / "native.mat").kspace, kspace)
    write_kspace_v5(tmp_path / "v5.mat", "kus", kspace[0])            # 4-D
    assert kspace_info(tmp_path / "v5.mat") == ((1, 3, 2, 5, 4), False, "kus")
    volume = read_kspace(tmp_path / "v5.mat", slices=slice(2, 3))
    np.testing.assert_array_equal(volume.kspace, kspace[:1, 2:3])
    assert not volume.has_time_axis


def test_wrong_dimensions_are_refused(tmp_path):
    write_kspace_v73(tmp_path / "k.mat", "kus", random_kspace((4, 5, 6)))
    with pytest.raises(MatReadError, match="3 dimensions"):
        read_kspace(tmp_path / "k.mat")
    write_mask_v73(tmp_path / "m.mat", "mask", np.ones((2, 2, 3, 4)))
    with pytest.raises(MatReadError, match="2-D or 3-D"):
        read_mask(tmp_path / "m.mat")


def test_failed_write_leaves_neither_output_nor_temporary(tmp_path, monkeypatch):
    def broken_savemat(path, *args, **kwargs):
        open(path, "wb").write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(scipy.io, "savemat", broken_savemat)
    with pytest.raises(OSError, match="disk full"):
        write_output(tmp_path / "out.mat", np.ones((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []
