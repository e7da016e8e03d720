"""The model with injected faults for the in-process scenario: zero-filled underneath, failing on chosen files."""
import numpy as np


class FaultyModel:
    """Stands in for the GENRE network: zero-filled underneath (fast), with a fault on chosen files.

    faults: meta.name (input path relative to the root) -> 'raise_mid_volume' (raises after the first slice),
    'raise_second_slab' (raises on the second call for the file), 'nan' (NaN in the output), 'cuda_oom_once'
    (torch.cuda.OutOfMemoryError on the first call; the runner must retry with a smaller batch).
    """
    name = "genre"

    def __init__(self, inner, faults: dict[str, str], batch_size: int = 8):
        self.inner, self.faults, self.batch_size = inner, faults, batch_size
        self.calls: dict[str, int] = {}
        self.out_of_memory_batch_sizes: list[int] = []
        self.largest_call_bytes = 0

    def reconstruct(self, kspace, mask, meta, progress=None):
        import torch

        self.calls[meta.name] = self.calls.get(meta.name, 0) + 1
        self.largest_call_bytes = max(self.largest_call_bytes, kspace.nbytes)
        fault = self.faults.get(meta.name)
        if fault == "cuda_oom_once" and not self.out_of_memory_batch_sizes:
            self.out_of_memory_batch_sizes.append(self.batch_size)
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB (injected, batch size {self.batch_size})")
        if fault == "raise_mid_volume":
            self.inner.reconstruct(kspace[:, :1], mask, meta, progress)
            raise RuntimeError(f"injected failure in {meta.name} after slice 1 of {kspace.shape[1]}")
        if fault == "raise_second_slab" and self.calls[meta.name] == 2:
            raise RuntimeError(f"injected failure in the second slab of {meta.name}")
        image = self.inner.reconstruct(kspace, mask, meta, progress)
        if fault == "nan":
            image = image.copy()
            image[:, -1] = np.nan
        return image


def faulty_factory(faults: dict[str, str]):
    """reconstructor_factory for runner.run: 'genre' is a FaultyModel, the fallbacks are the real ones."""
    from model.reconstruction import build_reconstructor

    model = FaultyModel(build_reconstructor("zerofilled", device="cpu"), faults)

    def factory(method: str):
        return model if method == "genre" else build_reconstructor(method, device="cpu")
    factory.model = model
    return factory
