# GENRE-CMR CMRxRecon submission image.
# The default base is a V100-capable (sm_70) CUDA 12.6 runtime whose torch must NOT be replaced: a host with
# driver 545 (CUDA 12.3) runs CUDA 12.x runtimes but refuses CUDA 13 wheels. Tests build on a stand-in base
# (docker/standin.Dockerfile) via --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=pytorch/pytorch:2.6.0-cuda12.6-cudnn9-runtime
FROM ${BASE_IMAGE}

# Optional CA bundle for pip behind a proxy at build time (empty = the image's own trust store).
ARG PIP_CERT=

WORKDIR /app
COPY requirements.txt /app/requirements.txt
# The sm_70 check reads the arch flags compiled into torch: no GPU is visible during `docker build`.
COPY docker/check_torch.py /tmp/check_torch.py
# torch comes from the base image; install the rest and fail the build if torch changed or lacks sm_70.
RUN set -eu; \
    before=$(python -c "import torch; print(torch.__version__)"); \
    grep -v '^torch' /app/requirements.txt > /tmp/requirements-no-torch.txt; \
    PIP_CERT="${PIP_CERT}" python -m pip install --no-cache-dir -r /tmp/requirements-no-torch.txt; \
    after=$(python -c "import torch; print(torch.__version__)"); \
    test "$before" = "$after" || { echo "torch changed from $before to $after"; exit 1; }; \
    python /tmp/check_torch.py --require sm_70; \
    rm /tmp/check_torch.py /tmp/requirements-no-torch.txt

COPY predict.py /app/predict.py
COPY model /app/model
COPY challenge /app/challenge
COPY weights /app/weights

# Nothing is fetched at run time; /input is read-only, everything goes to /output.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["python", "/app/predict.py"]
CMD ["--input", "/input", "--output", "/output"]
