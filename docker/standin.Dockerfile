# Stand-in for the CUDA base image on machines that cannot pull it: Debian bookworm + Python 3.11 + CPU torch
# in a venv whose `python` is first on PATH, as /opt/conda/bin/python is in pytorch/pytorch images.
ARG ROOTFS_IMAGE=localhost/genre-bookworm-minbase
FROM ${ROOTFS_IMAGE}
ARG PIP_CERT=
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv && PIP_CERT="${PIP_CERT}" /opt/venv/bin/pip install --no-cache-dir \
    --find-links /wheels torch==2.13.0
ENV PATH=/opt/venv/bin:$PATH
