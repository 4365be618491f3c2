"""The one table of GPU hardware: hardware profiles and the GPU parts they are built from.

Every consumer reads it: the nvidia-smi parser (profile detection), the acceptance gates, the
driver stack plan, engine placement and the roles' argument specs (checked by a unit test).

PCI device ids were checked against pci.ids (pciutils/pciids, August 2026). A GPU reports its id
in `nvidia-smi -q -x` as <pci_device_id>0x233510DE</pci_device_id>: device id in the high 16
bits, vendor (10DE) in the low 16.

Memory: `gpu_memory_gb` is what NVIDIA quotes (the datasheet); `gpu_memory_mib` is the total
nvidia-smi reports on that part (smaller: the driver reserves some), None where not known from a
capture. Placement uses the quoted figure so that every host computes the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

NVIDIA_VENDOR_ID = 0x10DE
GENERIC = "generic"


@dataclass(frozen=True)
class Profile:
    """A hardware profile: one server type the collection deploys as a unit."""

    key: str
    description: str
    model: str  # the word of the GPU name gates and operators use, e.g. H200
    pci_device_ids: tuple[int, ...]
    name_pattern: str  # regular expression on the product name, the fallback to the PCI id
    gpus_per_node: int
    gpu_memory_gb: int
    gpu_memory_mib: int | None
    nvlink_domain_size: int
    nvswitch: bool  # NVSwitches on the host's own baseboard
    fabric_manager: bool  # nvidia-fabricmanager runs on the host
    nvlsm: bool  # NVLink5 subnet manager on the host (HGX B200)
    imex: bool  # nvidia-imex on the host (NVL72 compute trays)
    open_modules_only: bool
    architecture: str
    cuda_arch: str  # compute capability


@dataclass(frozen=True)
class Part:
    """A GPU part known by PCI device id; profile None where no profile is built from it."""

    device_id: int
    name: str  # as pci.ids names it
    profile: str | None
    nvswitch_board: bool  # sold on baseboards whose NVLink goes through NVSwitches


# HGX B200; the 168 GB board below differs only in its parts and their memory.
_B200_HGX = Profile(
    key="b200_hgx",
    description="HGX B200 8-GPU (NVLink5 switches managed through NVLSM)",
    model="B200",
    pci_device_ids=(0x2901,),
    name_pattern=r"\bB200\b(?!.*\b168 ?GB\b)",
    gpus_per_node=8,
    gpu_memory_gb=180,
    gpu_memory_mib=183359,
    nvlink_domain_size=8,
    nvswitch=True,
    fabric_manager=True,
    nvlsm=True,
    imex=False,
    open_modules_only=True,
    architecture="Blackwell",
    cuda_arch="10.0",
)

PROFILES: dict[str, Profile] = {
    profile.key: profile
    for profile in (
        Profile(
            key="h100_hgx",
            description="HGX H100 8-GPU (SXM5, NVSwitch)",
            model="H100",
            pci_device_ids=(0x2330,),
            name_pattern=r"\bH100\b(?!.*\b(?i:PCIe|NVL)\b)",
            gpus_per_node=8,
            gpu_memory_gb=80,
            gpu_memory_mib=81559,
            nvlink_domain_size=8,
            nvswitch=True,
            fabric_manager=True,
            nvlsm=False,
            imex=False,
            open_modules_only=False,
            architecture="Hopper",
            cuda_arch="9.0",
        ),
        Profile(
            key="h200_hgx",
            description="HGX H200 8-GPU (SXM, NVSwitch)",
            model="H200",
            pci_device_ids=(0x2335,),
            name_pattern=r"\bH200\b(?!.*\b(?i:PCIe|NVL)\b)",
            gpus_per_node=8,
            gpu_memory_gb=141,
            gpu_memory_mib=143771,
            nvlink_domain_size=8,
            nvswitch=True,
            fabric_manager=True,
            nvlsm=False,
            imex=False,
            open_modules_only=False,
            architecture="Hopper",
            cuda_arch="9.0",
        ),
        _B200_HGX,
        # The same baseboard and stack with 168 GB parts (pci.ids "HGX B200 168GB"; DCGM has its own
        # diagnostic SKU for it): a profile of its own, so that placement sizes for 168 GB.
        replace(
            _B200_HGX,
            key="b200_168gb_hgx",
            description="HGX B200 168GB 8-GPU (NVLink5 switches managed through NVLSM)",
            pci_device_ids=(0x2909,),
            name_pattern=r"\bB200\b.*\b168 ?GB\b",
            gpu_memory_gb=168,
            gpu_memory_mib=None,
        ),
        Profile(
            key="gb200_nvl72",
            description="GB200 NVL72 compute tray (2 Grace-Blackwell superchips, 4 GPUs)",
            model="GB200",
            pci_device_ids=(0x2941,),
            name_pattern=r"\bGB200\b",
            gpus_per_node=4,
            gpu_memory_gb=186,
            gpu_memory_mib=189471,
            nvlink_domain_size=72,
            nvswitch=False,  # the switches sit in the rack's NVLink switch trays
            fabric_manager=False,
            nvlsm=False,
            imex=True,
            open_modules_only=True,
            architecture="Blackwell",
            cuda_arch="10.0",
        ),
    )
}
# What the roles' hardware profile variables accept.
PROFILE_CHOICES: tuple[str, ...] = (*PROFILES, GENERIC)

# GPU parts by PCI device id (pci.ids names). Parts without a profile still say whether they sit
# behind NVSwitches, so that a host with one gets fabric manager planned and its fabric checked.
PARTS: dict[int, Part] = {
    part.device_id: part
    for part in (
        Part(0x20B0, "A100 SXM4 40GB", None, True),
        Part(0x20B2, "A100 SXM4 80GB", None, True),
        Part(0x20B5, "A100 PCIe 80GB", None, False),
        Part(0x20F1, "A100 PCIe 40GB", None, False),
        Part(0x20F3, "A800 SXM4 80GB", None, True),
        Part(0x2324, "H800", None, True),
        Part(0x2329, "H20", None, True),
        Part(0x232C, "H20 HBM3e", None, True),
        Part(0x2330, "H100 SXM5 80GB", "h100_hgx", True),
        Part(0x2331, "H100 PCIe", None, False),
        Part(0x2335, "H200 SXM 141GB", "h200_hgx", True),
        Part(0x233B, "H200 NVL", None, False),
        Part(0x2342, "GH200 120GB / 480GB", None, False),
        Part(0x2348, "GH200 144G HBM3e", None, False),
        Part(0x2901, "B200", "b200_hgx", True),
        Part(0x2909, "HGX B200 168GB", "b200_168gb_hgx", True),
        Part(0x2941, "HGX GB200", "gb200_nvl72", False),
        Part(0x3182, "B300 SXM6 AC", None, True),
        Part(0x31C2, "GB300", None, False),
        Part(0x31C3, "GB300", None, False),
    )
}
# PCI ids of the NVSwitch chips themselves (they show in lspci, not in nvidia-smi).
NVSWITCH_DEVICE_IDS = {0x1AF1: "A100 NVSwitch", 0x22A3: "H100 NVSwitch"}

_PCI_ID_RE = re.compile(r"^(?:0x)?([0-9a-f]{8})$", re.IGNORECASE)


def parse_pci_device_id(raw: Any) -> tuple[int, int] | None:
    """(device, vendor) of an nvidia-smi <pci_device_id> such as 0x233510DE, else None."""
    match = _PCI_ID_RE.match(str(raw or "").strip())
    if not match:
        return None
    value = int(match.group(1), 16)
    return value >> 16, value & 0xFFFF


def part_by_pci(device_id: int | None, vendor_id: int | None = NVIDIA_VENDOR_ID) -> Part | None:
    """The known part of an NVIDIA PCI device id, else None."""
    if device_id is None or vendor_id != NVIDIA_VENDOR_ID:
        return None
    return PARTS.get(device_id)


def profile_by_name(name: str | None) -> str | None:
    """The profile a product name points to (fallback when the PCI id says nothing)."""
    if not name:
        return None
    for key, profile in PROFILES.items():
        if re.search(profile.name_pattern, name):
            return key
    return None


def profile(key: str) -> Profile | None:
    """The profile of a key, None for generic or unknown keys."""
    return PROFILES.get(key)


def profile_gpus(key: str) -> dict[str, Any] | None:
    """GPUs of a profile as placement reads them; None for generic or unknown keys."""
    entry = PROFILES.get(key)
    if entry is None:
        return None
    return {
        "gpu_count": entry.gpus_per_node,
        "gpu_memory_gb": entry.gpu_memory_gb,
        "nvlink_domain_size": entry.nvlink_domain_size,
    }


def profiles_where(flag: str) -> tuple[str, ...]:
    """Keys of the profiles whose boolean field `flag` is true, in table order."""
    return tuple(key for key, entry in PROFILES.items() if getattr(entry, flag))


def validation_expectations() -> dict[str, dict[str, Any]]:
    """What gpu_validate expects of each profile (and nothing of generic)."""
    expected: dict[str, dict[str, Any]] = {
        key: {
            "gpu_count": entry.gpus_per_node,
            "model": entry.model,
            "pci_device_ids": [f"0x{device:04X}" for device in entry.pci_device_ids],
        }
        for key, entry in PROFILES.items()
    }
    expected[GENERIC] = {}
    return expected
