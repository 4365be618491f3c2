#!/usr/bin/env bash
# Where a no-op site.yml's CPU goes, on a lab that is up (make lab): its wall time, the CPU the
# lab's host containers used (their cgroups, read before and after) and the controller's
# (ansible-playbook and its workers, from /usr/bin/time). A run that changes nothing costs the
# hosts mostly module starts and the controller mostly its per-task work.
# Usage: tests/bench/bench_noop_cpu.sh [extra ansible-playbook arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."

[[ -x /usr/bin/time ]] || { echo "needs GNU time (/usr/bin/time; Debian package time)" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ANSIBLE_NOCOLOR=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
hosts=$(ansible-inventory -i inventories/lab --list 2>/dev/null | python3 -c \
  'import json, sys; print(" ".join(json.load(sys.stdin)["_meta"]["hostvars"]))')

# CPU nanoseconds of the lab's containers, cgroup v1 (cpuacct) or v2 (cpu.stat, microseconds).
containers_cpu() {
  local total=0 path used
  for host in $hosts; do
    path=$(podman inspect --format '{{.State.CgroupPath}}' "$host" 2>/dev/null)
    if [[ -r /sys/fs/cgroup/cpuacct$path/cpuacct.usage ]]; then
      used=$(cat "/sys/fs/cgroup/cpuacct$path/cpuacct.usage")
    else
      used=$(($(awk '/^usage_usec/ {print $2}' "/sys/fs/cgroup$path/cpu.stat") * 1000))
    fi
    total=$((total + used))
  done
  echo "$total"
}

before=$(containers_cpu)
start=$(date +%s%N)
/usr/bin/time -f '%U %S' -o "$log.time" ansible-playbook -i inventories/lab site.yml "$@" >"$log" 2>&1
wall_ms=$((($(date +%s%N) - start) / 1000000))
hosts_ms=$((($(containers_cpu) - before) / 1000000))
read -r user system <"$log.time"
rm -f "$log.time"
changed=$(grep -E '^\S+\s+: ok=' "$log" | sed -E 's/.*changed=([0-9]+).*/\1/' | paste -sd+)
printf 'no-op site.yml: wall %d.%03d s, changed=%d\n' $((wall_ms / 1000)) $((wall_ms % 1000)) \
  $((changed))
printf '  hosts (containers) CPU: %d.%03d s\n' $((hosts_ms / 1000)) $((hosts_ms % 1000))
printf '  controller CPU:         %s s user + %s s system\n' "$user" "$system"
