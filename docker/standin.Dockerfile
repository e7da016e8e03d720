# Stand-in for the CUDA base image on machines that cannot pull it: Debian bookworm + Python 3.11 + the base's
# torch version (2.6.0) in a venv whose `python` is first on PATH, as /opt/conda/bin/python is in pytorch/pytorch
# images. PyPI's torch 2.6.0 is a CUDA 12.4 build (nvidia-* wheels, ~4 GB): it imports and runs on the CPU
# without a GPU, and torch.version.cuda is set, so the Dockerfile's checks take the same CUDA branch as on the
# real base (pytorch/pytorch:2.6.0-cuda12.6-cudnn9-runtime), where no GPU is visible during the build either.
ARG ROOTFS_IMAGE=localhost/genre-bookworm-minbase
FROM ${ROOTFS_IMAGE}
ARG PIP_CERT=
ARG TORCH_VERSION=2.6.0
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv && PIP_CERT="${PIP_CERT}" /opt/venv/bin/pip install --no-cache-dir \
    torch==${TORCH_VERSION} \
    && /opt/venv/bin/python -c "import torch; assert torch.version.cuda, torch.__version__; print(torch.__version__)"
ENV PATH=/opt/venv/bin:$PATH
