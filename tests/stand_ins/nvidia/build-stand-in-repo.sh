#!/usr/bin/env bash
# Build the NVIDIA stand-in apt repositories used by the GPU scenarios: packages with the real
# names and versions (tiny script payloads, no driver, no GPU), published as two flat
# repositories laid out like NVIDIA's (CUDA repo and libnvidia-container repo), each signed
# with a throwaway GPG key made here (InRelease). Rebuilt only when this directory or the
# recorded nvidia-smi fixtures change.
# Usage: build-stand-in-repo.sh [OUTPUT_DIR]   (default .cache/nvidia-stand-in/mirror)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$repo/.cache/nvidia-stand-in/mirror}"
fixtures="$repo/tests/unit/fixtures/nvidia_smi"

hash="$(cd "$repo" && cat tests/stand_ins/nvidia/build-stand-in-repo.sh tests/stand_ins/nvidia/payload/* \
  "$fixtures/h200_hgx.xml" "$fixtures/gb200_tray.xml" "$fixtures/b200_hgx.xml" | sha256sum | cut -c1-16)"
if [[ -f $out/.stand-in-$hash ]]; then
  echo "NVIDIA stand-in mirror $out is up to date"
  exit 0
fi

work="$(mktemp -d /var/tmp/nvidia-stand-in.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
cuda_dir="$out/cuda/debian12/x86_64"
toolkit_dir="$out/libnvidia-container/stable/deb/amd64"
mkdir -p "$cuda_dir" "$toolkit_dir"

# Stand-in CUDA version each driver branch reports (nvidia-smi's cuda_version).
declare -A cuda_of_driver=([580.95.05]=13.0 [580.126.09]=13.0)

# package NAME VERSION DEST_DIR [DEPENDS] -- then files as SRC:DEST[:MODE] pairs
package() {
  local name="$1" version="$2" dest="$3" depends="$4"
  shift 4
  local root="$work/$name-$version"
  mkdir -p "$root/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: amd64"
    echo "Maintainer: onprem.llm tests <tests@onprem-llm.invalid>"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Description: stand-in for NVIDIA's $name (test payload, no real software)"
  } >"$root/DEBIAN/control"
  local spec src target mode
  for spec in "$@"; do
    IFS=: read -r src target mode <<<"$spec"
    mkdir -p "$root/$(dirname "$target")"
    cp "$src" "$root/$target"
    chmod "${mode:-0644}" "$root/$target"
  done
  # Every package marks itself, so tests can tell a stand-in from the real thing.
  mkdir -p "$root/usr/share/nvidia-stand-in/packages"
  echo "$version" >"$root/usr/share/nvidia-stand-in/packages/$name"
  dpkg-deb --root-owner-group --build "$root" "$dest/${name}_${version#*:}_amd64.deb" >/dev/null
}

text() {  # text FILE CONTENT: write CONTENT to a file under the work dir and print its path
  local path="$work/files/$1"
  mkdir -p "$(dirname "$path")"
  printf '%s' "$2" >"$path"
  echo "$path"
}

p="$here/payload"
for version in 580.95.05 580.126.09; do
  deb="$version-1"
  versions=(-e "s/@DRIVER_VERSION@/$version/" -e "s/@CUDA_VERSION@/${cuda_of_driver[$version]}/")
  smi="$(text "smi-$version" "$(sed "${versions[@]}" "$p/nvidia-smi")")"
  smi_in_container="$(text "smi-container-$version" "$(sed "${versions[@]}" "$p/nvidia-smi-container")")"
  package nvidia-driver-580-open "$deb" "$cuda_dir" "nvidia-modprobe (= $deb)" \
    "$smi:usr/bin/nvidia-smi:0755" \
    "$smi_in_container:usr/share/nvidia-stand-in/container/nvidia-smi:0755" \
    "$fixtures/h200_hgx.xml:usr/share/nvidia-stand-in/recorded/h200_hgx.xml" \
    "$fixtures/gb200_tray.xml:usr/share/nvidia-stand-in/recorded/gb200_nvl72.xml" \
    "$fixtures/b200_hgx.xml:usr/share/nvidia-stand-in/recorded/b200_hgx.xml" \
    "$(text "kmod-$version" "open $version"):usr/share/nvidia-stand-in/kernel-module"
  package nvidia-modprobe "$deb" "$cuda_dir" "" "$p/sleeper:usr/bin/nvidia-modprobe:0755"
  package nvidia-persistenced "$deb" "$cuda_dir" "" \
    "$p/sleeper:usr/bin/nvidia-persistenced:0755" \
    "$p/nvidia-persistenced.service:lib/systemd/system/nvidia-persistenced.service"
  package nvidia-fabricmanager "$deb" "$cuda_dir" "" \
    "$p/sleeper:usr/bin/nv-fabricmanager:0755" \
    "$p/nvidia-fabricmanager.service:lib/systemd/system/nvidia-fabricmanager.service" \
    "$(text fmcfg "LOG_LEVEL=4
FABRIC_MODE=0
"):usr/share/nvidia/nvswitch/fabricmanager.cfg"
  package libnvidia-nscq "$deb" "$cuda_dir" "" "$(text "nscq-$version" "$version"):usr/lib/x86_64-linux-gnu/libnvidia-nscq.so.$version"
  package nvidia-imex "$deb" "$cuda_dir" "" \
    "$p/nvidia-imex:usr/bin/nvidia-imex:0755" \
    "$p/nvidia-imex-ctl:usr/bin/nvidia-imex-ctl:0755" \
    "$p/nvidia-imex.service:lib/systemd/system/nvidia-imex.service" \
    "$(text imexcfg "SERVER_PORT=50000
IMEX_NODE_CONFIG_FILE=/etc/nvidia-imex/nodes_config.cfg
"):etc/nvidia-imex/config.cfg"
  package libnvsdm "$deb" "$cuda_dir" "" "$(text "nvsdm-$version" "$version"):usr/lib/x86_64-linux-gnu/libnvsdm.so.$version"
done
package nvlsm 2025.06.6-1 "$cuda_dir" "" "$p/sleeper:usr/bin/nvlsm:0755"

dcgm=4.4.1-1
package datacenter-gpu-manager-4-core "1:$dcgm" "$cuda_dir" "" \
  "$p/nv-hostengine:usr/bin/nv-hostengine:0755" \
  "$p/dcgmi:usr/bin/dcgmi:0755" \
  "$p/nvidia-dcgm.service:lib/systemd/system/nvidia-dcgm.service"
for cuda in 12 13; do
  package "datacenter-gpu-manager-4-cuda$cuda" "1:$dcgm" "$cuda_dir" "datacenter-gpu-manager-4-core (= 1:$dcgm)" \
    "$(text "dcgm-cuda$cuda" "cuda$cuda"):usr/share/nvidia-stand-in/dcgm-cuda$cuda"
done
package datacenter-gpu-manager-exporter 4.4.1-4.6.0-1 "$cuda_dir" "" \
  "$p/dcgm-exporter:usr/bin/dcgm-exporter:0755" \
  "$p/default-counters.csv:etc/dcgm-exporter/default-counters.csv"

for cuda in 12-8:12.8.93-1 13-0:13.0.88-1; do
  name="${cuda%%:*}" version="${cuda#*:}"
  dotted="${name/-/.}"
  package "cuda-toolkit-$name" "$version" "$cuda_dir" "" \
    "$(text "nvcc-$name" "#!/bin/sh
# stand-in nvcc
echo 'nvcc: NVIDIA (R) Cuda compiler driver'
echo 'Cuda compilation tools, release $dotted, V${version%-*}'
"):usr/local/cuda-$dotted/bin/nvcc:0755"
done
for nccl in 2.27.7-1+cuda12.9 2.28.7-1+cuda13.0; do
  package libnccl2 "$nccl" "$cuda_dir" "" "$(text "nccl-$nccl" "$nccl"):usr/lib/x86_64-linux-gnu/libnccl.so.${nccl%%-*}"
  package libnccl-dev "$nccl" "$cuda_dir" "libnccl2 (= $nccl)" "$(text "nccl-h-$nccl" "/* stand-in nccl.h $nccl */"):usr/include/nccl.h"
done

for toolkit in 1.17.8-1 1.18.0-1; do
  package libnvidia-container1 "$toolkit" "$toolkit_dir" "" "$(text "lnc-$toolkit" "$toolkit"):usr/lib/x86_64-linux-gnu/libnvidia-container.so.1"
  package libnvidia-container-tools "$toolkit" "$toolkit_dir" "libnvidia-container1 (= $toolkit)" \
    "$p/sleeper:usr/bin/nvidia-container-cli:0755"
  base_files=("$p/nvidia-ctk:usr/bin/nvidia-ctk:0755" "$p/nvidia-cdi-hook:usr/bin/nvidia-cdi-hook:0755"
    "$p/sleeper:usr/bin/nvidia-container-runtime:0755")
  if [[ $toolkit == 1.18.* ]]; then
    base_files+=("$p/nvidia-cdi-refresh.service:lib/systemd/system/nvidia-cdi-refresh.service"
      "$p/nvidia-cdi-refresh.path:lib/systemd/system/nvidia-cdi-refresh.path")
  fi
  package nvidia-container-toolkit-base "$toolkit" "$toolkit_dir" "" "${base_files[@]}"
  package nvidia-container-toolkit "$toolkit" "$toolkit_dir" \
    "nvidia-container-toolkit-base (= $toolkit), libnvidia-container-tools (= $toolkit)" \
    "$p/sleeper:usr/bin/nvidia-container-runtime-hook:0755"
done

# Throwaway signing key, made for this mirror only.
export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "onprem.llm NVIDIA stand-in mirror <tests@onprem-llm.invalid>" rsa3072 sign never
gpg --batch --armor --export >"$out/stand-in-archive-key.asc"

publish() {  # a flat repository ("deb URI /"), as NVIDIA publishes its own
  local dir="$1" label="$2"
  (
    cd "$dir"
    dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages
    gzip -9kn Packages
    {
      echo "Origin: onprem.llm stand-in"
      echo "Label: $label"
      echo "Architectures: amd64"
      echo "Date: $(date -Ru)"
      for algo in MD5Sum:md5sum SHA256:sha256sum; do
        echo "${algo%%:*}:"
        for f in Packages Packages.gz; do
          printf ' %s %s %s\n' "$("${algo#*:}" "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"
        done
      done
    } >Release
    gpg --batch --yes --clearsign -o InRelease Release
    gpg --batch --yes --armor --detach-sign -o Release.gpg Release
  )
}
publish "$cuda_dir" "NVIDIA CUDA stand-in"
publish "$toolkit_dir" "libnvidia-container stand-in"
chmod -R a+rX "$out"
touch "$out/.stand-in-$hash"
echo "NVIDIA stand-in mirror built in $out"
