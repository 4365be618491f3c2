"""Checks the GPU scenarios share: an HGX node's held driver packages, CDI specs and devices, a
container image made on the host, and gates of the acceptance report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The driver stack an H100/H200 HGX node holds at one version (nvidia_driver role).
HGX_DRIVER_PACKAGES = [
    "nvidia-driver-580-open",
    "nvidia-fabricmanager",
    "libnvidia-nscq",
    "nvidia-modprobe",
    "nvidia-persistenced",
]

# dash and the C library: enough for a container to list its device nodes.
_SHELL_IMAGE_FILES = (
    "bin lib lib64 usr/bin/dash usr/lib64/ld-linux-x86-64.so.2 "
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/libc.so.6"
)


def assert_cdi_spec_names_every_gpu(text: str, gpus: int) -> None:
    """A CDI spec with one device per GPU, no more, and `all`."""
    assert "kind: nvidia.com/gpu" in text
    for index in range(gpus):
        assert f'- name: "{index}"' in text
        assert f"path: /dev/nvidia{index}" in text
    assert f"path: /dev/nvidia{gpus}" not in text
    assert "- name: all" in text


def assert_cdi_devices_listed(host: Any, gpus: int) -> None:
    listed = host.check_output("nvidia-ctk cdi list")
    assert "nvidia.com/gpu=all" in listed
    assert f"nvidia.com/gpu={gpus - 1}" in listed


def import_shell_image(host: Any, engine: str, image: str) -> str:
    """A tiny image made on the host (no registry) with `docker import` or `podman import`."""
    made = host.run(f"tar -C / -c {_SHELL_IMAGE_FILES} | {engine} import - {image}")
    assert made.rc == 0, made.stderr
    return image


# Gates every GPU stand-in passes: an expectation of the tests, written here once for the
# scenarios (the report's gate order is plugins/module_utils/_gpu_gates.py's GATES).
NODE_GATES = [
    "driver_versions",
    "gpu_count",
    "gpu_model",
    "persistence_mode",
    "ecc",
    "row_remapping",
]


def assert_gates_passed(gates: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> None:
    for name in names:
        assert gates[name]["status"] == "passed", (name, gates[name])
