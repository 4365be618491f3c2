#!/usr/bin/env bash
# Install what the tests and the lab need on this machine, idempotently: podman with runc
# (crun cannot run systemd test hosts on cgroups v1 hybrid), debootstrap for the base image,
# and the pinned Python toolchain in .venv (reinstalled only when pyproject.toml changes).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${ONPREM_LLM_VENV:-$repo/.venv}"
apt_packages=(podman runc debootstrap uidmap slirp4netns fuse-overlayfs nftables dpkg-dev gnupg prometheus shellcheck)
# Packages wanted for their tools only (promtool): their services must not run here.
tool_only_services=(prometheus prometheus-node-exporter)

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  # Keep maintainer scripts from starting services; an existing policy is left as it is.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for service in "${tool_only_services[@]}"; do
  [[ -e /lib/systemd/system/$service.service ]] || continue
  if [[ -d /run/systemd/system ]]; then
    if systemctl is-enabled -q "$service" 2>/dev/null; then systemctl disable -q --now "$service"; fi
  else
    # No systemd running (containers, some CI machines): remove the boot-time links the way
    # the package's own scripts do, so that upgrades keep them off.
    DPKG_MAINTSCRIPT_PACKAGE="$service" deb-systemd-helper disable "$service.service" >/dev/null
    if [[ -e /etc/init.d/$service ]]; then update-rc.d "$service" disable >/dev/null 2>&1; fi
  fi
done

runtime_conf=/etc/containers/containers.conf.d/50-onprem-llm-runc.conf
if [[ ! -f $runtime_conf ]]; then
  mkdir -p "$(dirname "$runtime_conf")"
  printf '# crun fails on cgroups v1 hybrid hosts; runc works.\n[engine]\nruntime = "runc"\n' >"$runtime_conf"
fi

# galaxy.yml: the package takes its version from it.
stamp="$venv/.onprem-llm-$(cat "$repo/pyproject.toml" "$repo/galaxy.yml" | sha256sum | cut -c1-16)"
if [[ ! -f $stamp ]]; then
  echo "installing the Python toolchain into $venv (about a minute)"
  # A venv left half-made by an interrupted run is made again.
  [[ -x $venv/bin/pip && -x $venv/bin/python ]] || { rm -rf "$venv"; python3 -m venv "$venv"; }
  # Local find-links entries of some machines that do not exist are noise, not errors.
  "$venv/bin/pip" install -q --disable-pip-version-check -e "${repo}[dev]" \
    2> >(grep -v "^WARNING: Location .* is ignored" >&2)
  rm -f "$venv"/.onprem-llm-*
  touch "$stamp"
fi
