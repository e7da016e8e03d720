# GENRE-CMR: the CMRxRecon challenge container and its research tools.
PYTHON ?= python3
SAMPLE ?= data/sample
OUT ?= build
YEARS ?= 2023 2024 2025

.PHONY: setup sample-data smoke test test-image-torch test-direct test-fast docker-smoke bench eval ablations train train-smoke faults gpu-check gpu-check-dry clean

## setup: install run-time and test packages (CPU torch 2.13.0 unless a torch is already installed)
setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PYTHON) -m pip install --no-deps -r requirements-dev-nodeps.txt

## sample-data: small CMRxRecon-format input trees (2023, 2024, 2025) + ground truth under data/sample
sample-data:
	$(PYTHON) -m tools.sample_data $(SAMPLE) --years $(YEARS)

## smoke: sample data, predict on every year's tree with the network and with each fall-back the container writes
## when the network cannot run (CG-SENSE, zero-filled), score against the ground truth; ends with one PASS/FAIL line
## and fails unless every year has w = 1 and the network's PSNR leads the better fall-back by the margin.
## The nine predict.py runs go side by side, one torch thread each (SMOKE_THREADS; on this 2-core machine at load
## 5-6 one forward pass of an 80 x 160 window took 97 s wall with 2 threads and 5.4 s with 1), and with one
## reflection pass per window (SMOKE_ENSEMBLE; predict.py's default 2 adds 0.2-0.3 dB, not what smoke checks)
SMOKE_MARGIN_DB ?= 1
SMOKE_ENSEMBLE ?= 1
SMOKE_THREADS ?= 1
SMOKE_FALLBACKS = cgsense zerofilled
smoke: export OMP_NUM_THREADS = $(SMOKE_THREADS)
smoke: sample-data
	@rm -rf $(OUT)/smoke; mkdir -p $(OUT)/smoke; \
	echo "== predict: genre, $(SMOKE_FALLBACKS) on $(YEARS), side by side (logs: $(OUT)/smoke/*.log)"; \
	for y in $(YEARS); do \
	  $(PYTHON) predict.py --input $(SAMPLE)/$$y/input --output $(OUT)/smoke/$$y --ensemble $(SMOKE_ENSEMBLE) \
	    > $(OUT)/smoke/genre-$$y.log 2>&1 & \
	  for m in $(SMOKE_FALLBACKS); do \
	    $(PYTHON) predict.py --input $(SAMPLE)/$$y/input --output $(OUT)/smoke/$$m/$$y --method $$m \
	      > $(OUT)/smoke/$$m-$$y.log 2>&1 & \
	  done; \
	done; wait; \
	for y in $(YEARS); do \
	  echo "$$y genre: $$(grep -h '^success rate' $(OUT)/smoke/genre-$$y.log || echo 'no run report, see the log')"; \
	done; \
	echo "== score (challenge.scoring, $(OUT)/smoke/score_YEAR.json) and verdict"; \
	$(PYTHON) -m challenge.smoke_gate --sample $(SAMPLE) --out $(OUT)/smoke --years $(YEARS) --margin-db $(SMOKE_MARGIN_DB)

## test: the whole test suite (the README's and CI's test command)
test:
	$(PYTHON) -m pytest -q

## test-image-torch: the whole suite under the image's torch version (PyPI's 2.6.0, a CUDA 12.4 build that runs
## on the CPU), in a venv made on first use (about 4 min and 5.5 GB)
IMAGE_TORCH ?= 2.6.0
IMAGE_TORCH_VENV ?= .venv-torch$(IMAGE_TORCH)
test-image-torch: $(IMAGE_TORCH_VENV)/.installed
	$(IMAGE_TORCH_VENV)/bin/python -c "import torch; assert torch.__version__.split('+')[0] == '$(IMAGE_TORCH)', torch.__version__"
	$(IMAGE_TORCH_VENV)/bin/python -m pytest -q

$(IMAGE_TORCH_VENV)/.installed: requirements.txt requirements-dev.txt requirements-dev-nodeps.txt
	[ -x $(IMAGE_TORCH_VENV)/bin/python ] || $(PYTHON) -m venv $(IMAGE_TORCH_VENV)
	$(IMAGE_TORCH_VENV)/bin/pip install torch==$(IMAGE_TORCH) -r requirements.txt -r requirements-dev.txt
	$(IMAGE_TORCH_VENV)/bin/pip install --no-deps -r requirements-dev-nodeps.txt
	touch $@

## test-direct: the vSHARP peer's tests in a Python 3.12 venv made on first use (direct-recon needs >= 3.12;
## about 15 min and 6 GB: it brings torch 2.14 with CUDA wheels). Run vSHARP with $(DIRECT_VENV)/bin/python.
# the first Python 3.12 that runs: on PATH, else a pyenv install (its shim refuses 3.12 when 3.11 is global)
DIRECT_PYTHON ?= $(firstword $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) \
                   $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
DIRECT_VENV ?= .venv-direct
test-direct: $(DIRECT_VENV)/.installed
	$(DIRECT_VENV)/bin/python -m pytest -q tests/test_peer_vsharp.py

$(DIRECT_VENV)/.installed: requirements-direct.txt
	[ -x $(DIRECT_VENV)/bin/python ] || $(DIRECT_PYTHON) -m venv $(DIRECT_VENV)
	$(DIRECT_VENV)/bin/pip install -r requirements-direct.txt
	touch $@

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

## docker-smoke: build the Dockerfile with buildah on a stand-in base, run it on the 2024 sample tree
docker-smoke:
	bash scripts/docker_smoke.sh

## train-smoke: a tiny generator for a few minutes on CPU; fails unless validation SSIM improves
train-smoke:
	[ -d data/train-smoke/train ] || $(PYTHON) -m training.build_data data/train-smoke --realisations 1 --phantoms 2
	rm -rf $(OUT)/train-smoke
	$(PYTHON) -m training --data data/train-smoke/train --run-dir $(OUT)/train-smoke --preset smoke
	$(PYTHON) -m training.report $(OUT)/train-smoke --require-improvement

## train: the shipped configuration (preset cpu: simulated at native scale, from TRAIN_ARGS='--init-from W.pt';
## TRAIN_PRESET=paper on a GPU); exported to runs/, never over weights/ unless EXPORT=weights/genre_cmr.pt is given
TRAIN_PRESET ?= cpu
TRAIN_DATA ?= data/genre/train
TRAIN_ARGS ?=
EXPORT ?= runs/genre-$(TRAIN_PRESET)/genre_cmr.pt
train:
	@if $(PYTHON) -c "import sys; from training.config import PRESETS; sys.exit(PRESETS['$(TRAIN_PRESET)'].source != 'files')"; then \
	  [ -d $(TRAIN_DATA) ] || $(PYTHON) -m training.build_data $(dir $(TRAIN_DATA:/=)); fi
	$(PYTHON) -m training --data $(TRAIN_DATA) --run-dir runs/genre-$(TRAIN_PRESET) --preset $(TRAIN_PRESET) \
	  --export $(EXPORT) $(TRAIN_ARGS)

## eval: held-out trees, predict with genre / cgsense / zerofilled, 2024 metric; writes docs/results.md;
## the reflection ensembles on validation windows (how predict.py's default was chosen); and held-out anatomy
## at native size for every input kind plus the real k-space, and the real radial acquisition as a no-reference
## check (docs/native-eval.md, docs/figures/); the real acquisitions' SNR against the simulated range (docs/real-snr.md)
eval:
	[ -d data/genre/eval ] || $(PYTHON) -m training.build_data data/genre
	$(PYTHON) -m benchmarks.ensemble_validation --data data/genre/train --out docs/ensemble-validation.md
	$(PYTHON) -m benchmarks.evaluate --data data/genre --out $(OUT)/eval --results docs/results.md
	$(PYTHON) -m benchmarks.native_eval --weights weights/genre_cmr.pt --labels "GENRE shipped" --subjects 1 \
	  --out docs/native-eval.md --figures docs/figures --json $(OUT)/native-eval.json
	$(PYTHON) -m benchmarks.radial_check --weights weights/genre_cmr.pt --labels "GENRE shipped" \
	  --out docs/native-eval.md --figures docs/figures
	$(PYTHON) -m benchmarks.real_snr --out docs/real-snr.md

## ablations: the full method and --no-ear / --no-sda / --no-residual, each the same short CPU budget
## (preset ablation), scored on the held-out seen cine; writes docs/ablations.md
ABLATIONS ?= full no-ear no-sda no-residual
ablations:
	[ -d data/genre/train ] || $(PYTHON) -m training.build_data data/genre
	for variant in $(ABLATIONS); do \
	  flag=""; [ "$$variant" = full ] || flag="--$$variant"; \
	  $(PYTHON) -m training --data data/genre/train --run-dir runs/ablation-$$variant --preset ablation $$flag \
	    --export runs/ablation-$$variant/genre.pt || exit 1; \
	done
	$(PYTHON) -m benchmarks.evaluate --data data/genre --out $(OUT)/ablations --results docs/ablations.md \
	  --groups seen --methods genre --weights runs/ablation-full/genre.pt \
	  --extra-weights $(foreach v,$(filter-out full,$(ABLATIONS)),$(v)=runs/ablation-$(v)/genre.pt)

## faults: build a tree of damaged inputs, run predict.py over it, check every outcome
faults:
	$(PYTHON) -m tools.faults --run $(OUT)/faults

## bench: model cost/speed and predict.py throughput; results go to docs/benchmarks.md
bench: sample-data
	$(PYTHON) -m benchmarks.bench_model --out docs/benchmarks.md
	$(PYTHON) -m benchmarks.bench_predict --tree $(SAMPLE)/2024/input --method genre --out docs/benchmarks.md
	$(PYTHON) -m benchmarks.bench_allocator --out docs/benchmarks.md

## gpu-check: the CUDA path on one GPU in about 8 minutes: predict.py on the sample trees in fp32 and fp16 against
## the CPU (w = 1, max relative error), images/s and peak memory of the shipped and paper generators at batch 1-16,
## one forced CUDA out-of-memory retry, 20 AMP training steps, the windows/s a training step consumes against what
## the loader's workers produce, a 1-process NCCL DDP start; writes docs/gpu.md
## (sample trees built first when absent; YEARS=2024 shortens the predict check)
gpu-check:
	@missing=0; for y in $(YEARS); do [ -d $(SAMPLE)/$$y/input ] || missing=1; done; \
	  [ $$missing = 0 ] || $(PYTHON) -m tools.sample_data $(SAMPLE) --years $(YEARS)
	$(PYTHON) -m benchmarks.gpu_check --sample $(SAMPLE) --years $(YEARS) --out docs/gpu.md

## gpu-check-dry: the same checks on the CPU at tiny sizes (gloo for NCCL); report in build/gpu-check-dry/gpu.md
gpu-check-dry:
	$(PYTHON) -m benchmarks.gpu_check --dry

clean:
	rm -rf $(OUT) $(SAMPLE)
