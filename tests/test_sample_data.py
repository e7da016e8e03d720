"""Sample trees: every file is discoverable by the year rules, masks match the k-space, GT has the exact
shape the scorer expects (full and cropped), and the awkward cases are present."""
import numpy as np
import pytest
import scipy.io

from challenge.discovery import discover
from challenge.matio import kspace_info, read_kspace, read_mask
from challenge.rules import expected_output_shape
from tools.sample_data import build_sample_trees

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    manifest = build_sample_trees(root, years=(2023, 2024, 2025), seed=0)
    return root, manifest


@pytest.mark.parametrize("year", [2023, 2024, 2025])
def test_every_sample_file_is_discovered_with_its_mask_and_ground_truth(trees, year):
    root, manifest = trees
    discovery = discover(root / str(year) / "input")
    assert len(discovery.jobs) == sum(f["year"] == year for f in manifest["files"]) and not discovery.errors
    for job in discovery.jobs:
        shape, has_time, _ = kspace_info(job.input_path, job.kspace_key)
        kspace = read_kspace(job.input_path, job.kspace_key).kspace
        mask = read_mask(job.mask_path, job.mask_key)
        mask = np.broadcast_to(mask, (shape[0], *mask.shape[-2:]))
        sampled = np.abs(kspace).sum(axis=(1, 2)) > 0                       # (nt, ny, nx)
        np.testing.assert_array_equal(sampled, mask)
        for crop, folder in ((False, "gt_full"), (True, "gt_crop")):
            gt = scipy.io.loadmat(root / str(year) / folder / job.output_relative)["img4ranking"]
            assert gt.dtype == np.float32
            assert gt.shape == expected_output_shape(job, shape, has_time, crop=crop)


def test_awkward_cases_are_present(trees):
    _, manifest = trees
    shapes = [tuple(f["shape_h5"]) for f in manifest["files"]]
    assert any(s[-1] % 2 and s[-2] % 2 for s in shapes)                       # odd ny and nx
    assert any(not f["has_time_axis"] for f in manifest["files"])              # 4-D files
    assert any(s[1] == 1 for s in shapes)                                      # single slice
    assert any(1 < s[0] < 5 for s in shapes)                                   # nt < 5
    assert {f["pattern"] for f in manifest["files"]} == {"Uniform", "ktUniform", "ktGaussian", "ktRadial"}
