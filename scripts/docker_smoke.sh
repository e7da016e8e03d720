#!/usr/bin/env bash
# Build the real Dockerfile with buildah on a stand-in base (the CUDA base cannot be pulled here) that carries
# the real base's torch version as a CUDA build, so the Dockerfile's sm_70 check runs as it will there (CUDA
# build, no GPU visible); run the image's own ENTRYPOINT+CMD (CPU execution) on the 2024 sample tree with
# /input read-only and no network, then re-check every output independently (scorer against the ground truth; w must be 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER=vfs
BUILDAH="buildah --storage-driver vfs"
IMAGE=localhost/genre-cmr:smoke
TORCH_VERSION=${TORCH_VERSION:-2.6.0}    # pytorch/pytorch:2.6.0-cuda12.6-cudnn9-runtime
STANDIN=localhost/genre-standin-base-torch$TORCH_VERSION
ROOTFS_IMAGE=localhost/genre-bookworm-minbase
SAMPLE=data/sample/2024
OUT=build/docker-smoke/output
CERT=$(python3 -c "import ssl; print(ssl.get_default_verify_paths().cafile or '/etc/ssl/certs/ca-certificates.crt')")

for tool in buildah debootstrap podman unshare; do
  command -v "$tool" >/dev/null || { echo "docker-smoke needs $tool (apt-get install buildah debootstrap podman)"; exit 2; }
done

if ! $BUILDAH inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
  echo "== stand-in rootfs (debootstrap bookworm minbase)"
  rm -rf build/rootfs && mkdir -p build
  debootstrap --variant=minbase bookworm build/rootfs >/dev/null
  tar -C build/rootfs -c . | podman --storage-driver vfs import - "$ROOTFS_IMAGE" >/dev/null
  rm -rf build/rootfs
fi
if ! $BUILDAH inspect "$STANDIN" >/dev/null 2>&1; then
  echo "== stand-in base (python3 + torch $TORCH_VERSION from PyPI, a CUDA build)"
  $BUILDAH bud --isolation chroot -f docker/standin.Dockerfile --build-arg ROOTFS_IMAGE="$ROOTFS_IMAGE" \
    --build-arg TORCH_VERSION="$TORCH_VERSION" --build-arg PIP_CERT=/run/host-ca.crt \
    -v "$CERT":/run/host-ca.crt:ro -t "$STANDIN" docker
fi

echo "== build $IMAGE from ./Dockerfile"
mkdir -p build/docker-smoke
$BUILDAH bud --isolation chroot --build-arg BASE_IMAGE="$STANDIN" --build-arg PIP_CERT=/run/host-ca.crt \
  -v "$CERT":/run/host-ca.crt:ro -t "$IMAGE" . 2>&1 | tee build/docker-smoke/build.log
# The stand-in exists so that the check meets a CUDA build: a CPU torch would skip it.
grep -q "^check_torch: torch .*, CUDA .*: has sm_70" build/docker-smoke/build.log \
  || { echo "docker-smoke: the build's sm_70 check did not run on a CUDA build of torch"; exit 1; }

[ -d "$SAMPLE/input" ] || python3 -m tools.sample_data data/sample --years 2024
rm -rf "$OUT" && mkdir -p "$OUT"

# buildah run does not apply ENTRYPOINT/CMD: run exactly what `docker run IMAGE` would.
mapfile -t CMD < <($BUILDAH inspect --type image "$IMAGE" | python3 -c '
import json, sys
cfg = json.load(sys.stdin)["OCIv1"]["config"]
for part in (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or []): print(part)')
echo "== run (no network, /input read-only): ${CMD[*]}"
CTR=$($BUILDAH from "$IMAGE")
trap '$BUILDAH rm "$CTR" >/dev/null 2>&1 || true' EXIT
status=0
unshare --net $BUILDAH run --isolation chroot -v "$PWD/$SAMPLE/input":/input:ro -v "$PWD/$OUT":/output \
  "$CTR" -- "${CMD[@]}" | tee build/docker-smoke/stdout.log || status=$?
echo "container exit status: $status"

echo "== independent re-check against the ground truth"
python3 -m challenge.scoring --gt "$SAMPLE/gt_full" --recon "$OUT" --year 2024 --json build/docker-smoke/score.json
python3 - "$OUT" "$SAMPLE/gt_full" <<'PY'
import json, pathlib, sys
out, gt = map(pathlib.Path, sys.argv[1:])
expected = {p.relative_to(gt) for p in gt.rglob("*.mat")}
written = {p.relative_to(out) for p in out.rglob("*.mat")}
assert written == expected, f"missing {sorted(expected - written)} extra {sorted(written - expected)}"
report = json.loads((out / "run_report.json").read_text())
assert report["success_rate"] == 1.0, report["success_rate"]
leftovers = [p for p in out.rglob("*") if p.is_file() and p.suffix not in {".mat", ".json"}]
assert not leftovers, leftovers
print(f"docker-smoke OK: {len(written)} outputs, success rate 1.0")
PY
exit $status
