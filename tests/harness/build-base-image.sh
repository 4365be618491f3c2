#!/usr/bin/env bash
# Build the systemd test-host image once per machine and Debian release: Debian 12 (bookworm,
# every host) or 13 (trixie: the Redis 8 hosts the semantic cache needs), made with debootstrap
# and imported into podman. No registry is needed, which is also how air-gapped sites work.
# Usage: build-base-image.sh IMAGE_REF [SUITE]
set -euo pipefail

image="${1:?usage: $0 IMAGE_REF [bookworm|trixie]}"
suite="${2:-bookworm}"
mirror="${ONPREM_LLM_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Packages the roles' tests need, baked in so that converges do not download them each time.
packages=(
  systemd systemd-sysv dbus iproute2 procps python3 python3-apt ca-certificates gnupg
  curl openssh-server chrony nftables unattended-upgrades apt-listchanges xfsprogs
  prometheus prometheus-alertmanager prometheus-node-exporter
  haproxy socat python3-cryptography
  # debootstrap does not resolve virtual packages: name what python3-cryptography needs.
  python3-cffi-backend
)

if podman image exists "$image"; then
  echo "test-host image $image is present"
  exit 0
fi

rootfs="$(mktemp -d /var/tmp/onprem-llm-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT

echo "building test-host image $image with debootstrap (about a minute)"
log="$rootfs.log"
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  "$suite" "$rootfs" "$mirror" >"$log" 2>&1; then
  echo "debootstrap failed; the end of its logs:" >&2
  tail -n 20 "$log" "$rootfs/debootstrap/debootstrap.log" >&2 || true
  exit 1
fi
rm -f "$log"

# Services that make no sense inside a test host, and a reachable apt mirror.
chroot "$rootfs" systemctl mask systemd-timesyncd.service getty.target \
  systemd-udevd.service systemd-remount-fs.service apt-daily.timer \
  apt-daily-upgrade.timer >/dev/null 2>&1
# Monitoring services stay off until a role enables them.
chroot "$rootfs" systemctl disable prometheus.service prometheus-alertmanager.service \
  prometheus-node-exporter.service >/dev/null 2>&1
# The gateway stays off until its role configures it.
chroot "$rootfs" systemctl disable haproxy.service >/dev/null 2>&1
# Each host makes its own ssh host key on first boot, as cloud images do, instead of every host
# sharing the keys made when the image was built; the harness pins each host's key.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
cat >"$rootfs/etc/systemd/system/ssh.service.d/host-key.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
UNIT
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\n' >"$rootfs/etc/ssh/sshd_config.d/host-key.conf"
printf 'deb %s %s main\n' "$mirror" "$suite" >"$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
echo "test-host image $image built"
