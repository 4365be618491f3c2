#!/usr/bin/env bash
# The lab from nothing, then a no-op site.yml, over ssh as production runs it: the time to start
# the hosts, a cold site.yml, a second (no-op) site.yml with its changed count (expected 0) and
# its share of the cold run, then the no-op's ten slowest tasks and its roles (profile_tasks,
# profile_roles), and the commands a no-op runs on each host (a third run, with -vvv; steadier
# than times on a busy machine). Removes the lab first and leaves it up.
# Usage: tests/bench/bench_lab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ANSIBLE_NOCOLOR=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
make --no-print-directory lab-down >"$log" 2>&1
make --no-print-directory image vllm-assets gateway-wheel >"$log" 2>&1

milliseconds() { echo $((($(date +%s%N) - $1) / 1000000)); }
seconds() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); }

start=$(date +%s%N)
make --no-print-directory lab-hosts >"$log" 2>&1
hosts_ms=$(milliseconds "$start")

start=$(date +%s%N)
ansible-playbook -i inventories/lab site.yml >"$log" 2>&1
cold_ms=$(milliseconds "$start")

start=$(date +%s%N)
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks,ansible.posix.profile_roles,onprem.llm.audit_log \
  ansible-playbook -i inventories/lab site.yml >"$log" 2>&1
noop_ms=$(milliseconds "$start")
changed=$(grep -E '^\S+\s+: ok=' "$log" | grep -v '^localhost ' | sed -E 's/.*changed=([0-9]+).*/\1/' | paste -sd+)
hosts=$(grep -E '^\S+\s+: ok=' "$log" | grep -cv '^localhost ')

printf 'lab hosts started:                %s\n' "$(seconds "$hosts_ms")"
printf 'site.yml, cold:                   %s\n' "$(seconds "$cold_ms")"
printf 'site.yml, no-op (%d hosts):        %s, changed=%d, %d%% of cold\n' "$hosts" \
  "$(seconds "$noop_ms")" $((changed)) $((100 * noop_ms / cold_ms))
echo
echo "no-op: ten slowest tasks"
sed -n '/^TASKS RECAP/,/^ROLES RECAP/p' "$log" | grep -E ' -+ [0-9.]+s$' | head -10
echo
echo "no-op: roles"
sed -n '/^ROLES RECAP/,$p' "$log" | grep -E ' -+ [0-9.]+s$'

ansible-playbook -i inventories/lab site.yml -vvv >"$log" 2>&1
echo
echo "no-op: commands run on each host (ssh executions, -vvv)"
grep -oE '^<[^>]+> SSH: EXEC' "$log" | sort | uniq -c | sed -E 's/ SSH: EXEC$//'
grep -cE '^<[^>]+> SSH: EXEC' "$log" | sed 's/^/  total /'
# A module run starts Python on the host (the costly part); the rest are shell commands.
grep -E '^<[^>]+> SSH: EXEC' "$log" | grep -c python3 | sed 's/^/  of which module runs (Python) /'
