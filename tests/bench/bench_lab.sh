#!/usr/bin/env bash
# Time `make lab` from nothing, then a second, no-op site.yml run against the lab, and report
# the changed count of that second run (expected 0). Removes the lab first and leaves it up.
# Usage: tests/bench/bench_lab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

make --no-print-directory lab-down >/dev/null
log="$(mktemp)"

start=$(date +%s%N)
make --no-print-directory lab >"$log" 2>&1
lab_ms=$((($(date +%s%N) - start) / 1000000))

start=$(date +%s%N)
PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ANSIBLE_NOCOLOR=1 \
  ansible-playbook -i inventories/lab site.yml >"$log" 2>&1
noop_ms=$((($(date +%s%N) - start) / 1000000))
changed=$(grep -E '^\S+\s+: ok=' "$log" | sed -E 's/.*changed=([0-9]+).*/\1/' | paste -sd+)
changed=$((changed))
hosts=$(grep -cE '^\S+\s+: ok=' "$log")

printf 'make lab (create hosts + site.yml):  %d.%03d s\n' $((lab_ms / 1000)) $((lab_ms % 1000))
printf 'no-op site.yml re-run (%d hosts):     %d.%03d s, changed=%d\n' "$hosts" \
  $((noop_ms / 1000)) $((noop_ms % 1000)) "$changed"
rm -f "$log"
