"""The run's fallback policy and its one out-of-memory policy (challenge/fallback.py)."""
import numpy as np
import pytest
import torch

from challenge.fallback import FALLBACK_METHODS, MethodChain, is_out_of_memory, smaller_batch_after
from model.reconstruction import VolumeMeta, WeightsUnavailable

META = VolumeMeta(num_acs=16, radial=False, cyclic=True, name="P001/cine_sax.mat")


class Slices:
    def __init__(self):
        self.begun = self.aborted = 0

    def begin_attempt(self):
        self.begun += 1

    def abort_attempt(self):
        self.aborted += 1

    def update(self, slices):
        pass


class Model:
    """Raises ``error`` while its batch size is above ``fits``; else a constant image."""
    def __init__(self, name, error=None, fits=0, batch_size=8):
        self.name, self.error, self.fits, self.batch_size = name, error, fits, batch_size

    def reconstruct(self, kspace, mask, meta, progress=None):
        if self.error is not None and self.batch_size > self.fits:
            raise self.error
        nt, nz, _, ny, nx = kspace.shape
        return np.ones((nt, nz, ny, nx), np.float32)


KSPACE = np.ones((2, 1, 3, 8, 6), np.complex64)
MASK = np.ones((2, 8, 6), bool)


@pytest.mark.parametrize("error, expected", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"), False),
    (MemoryError("Unable to allocate 366. GiB"), False),     # host memory: the slab plan's job, not the batch's
    (ValueError("shape mismatch"), False),
])
def test_what_counts_as_out_of_memory(error, expected):
    assert is_out_of_memory(error) is expected


def test_the_batch_is_halved_down_to_one_and_kept():
    model = Model("genre", batch_size=5)
    oom = torch.cuda.OutOfMemoryError("out of memory")
    assert [smaller_batch_after(oom, model) for _ in range(3)] == [2, 1, None]
    assert model.batch_size == 1
    assert smaller_batch_after(ValueError("other"), Model("genre")) is None
    assert smaller_batch_after(oom, object()) is None         # no batch to shrink: the next method runs


def test_out_of_memory_retries_the_method_then_falls_back():
    notes = []
    genre = Model("genre", error=torch.cuda.OutOfMemoryError("out of memory"), fits=2)
    chain = MethodChain("genre", lambda method: genre if method == "genre" else Model(method), notes)
    progress = Slices()
    image, method, why = chain.reconstruct(KSPACE, MASK, META, progress, notes)
    assert (method, why, genre.batch_size, image.shape) == ("genre", None, 2, (2, 1, 8, 6))
    assert progress.aborted == 2 and len(notes) == 2 and "batch size 2" in notes[-1]
    never = Model("genre", error=torch.cuda.OutOfMemoryError("out of memory"), fits=0)
    chain = MethodChain("genre", lambda method: never if method == "genre" else Model(method), [])
    image, method, why = chain.reconstruct(KSPACE, MASK, META, Slices(), [])
    assert method == FALLBACK_METHODS[0] and "OutOfMemoryError" in why and never.batch_size == 1


def test_an_unbuildable_method_hands_the_primary_role_on():
    def factory(method):
        if method == "genre":
            raise WeightsUnavailable("weights/genre_cmr.pt: sha256 mismatch")
        return Model(method)
    notes = []
    chain = MethodChain("genre", factory, notes)
    assert chain.primary == "cgsense" and "sha256 mismatch" in notes[0]


def test_an_invalid_image_falls_back():
    class NaNModel(Model):
        def reconstruct(self, *args, **kwargs):
            image = super().reconstruct(*args, **kwargs)
            image[0, 0, 0, 0] = np.nan
            return image
    chain = MethodChain("genre", lambda method: NaNModel(method) if method == "genre" else Model(method), [])
    image, method, why = chain.reconstruct(KSPACE, MASK, META, Slices(), [])
    assert method == "cgsense" and "invalid output: 1 non-finite values" in why
