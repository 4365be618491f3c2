"""The hardware table: one source for profiles, and every list of them agrees with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.module_utils import _hardware

REPO_ROOT = Path(__file__).resolve().parents[4]


def _profile_choice_lists() -> list[tuple[str, list[Any]]]:
    """Every argument_specs option whose choices name a hardware profile."""
    found = []
    for spec_file in sorted(REPO_ROOT.glob("roles/*/meta/argument_specs.yml")):
        specs = yaml.safe_load(spec_file.read_text()) or {}
        for entry_point, spec in (specs.get("argument_specs") or {}).items():
            for name, option in (spec.get("options") or {}).items():
                choices = option.get("choices") or []
                if any(choice in _hardware.PROFILES for choice in choices):
                    where = f"{spec_file.relative_to(REPO_ROOT)}:{entry_point}.{name}"
                    found.append((where, choices))
    return found


CHOICE_LISTS = _profile_choice_lists()


def test_profile_choice_lists_are_found() -> None:
    wheres = [where for where, _unused in CHOICE_LISTS]
    assert "roles/nvidia_driver/meta/argument_specs.yml:main.nvidia_driver_profile" in wheres
    assert "roles/gpu_validate/meta/argument_specs.yml:main.gpu_validate_profile" in wheres


@pytest.mark.parametrize(("where", "choices"), CHOICE_LISTS, ids=[w for w, _unused in CHOICE_LISTS])
def test_argument_spec_choices_are_the_table(where: str, choices: list[Any]) -> None:
    # An empty string means "as detected" where the role accepts it.
    assert [choice for choice in choices if choice != ""] == list(_hardware.PROFILE_CHOICES)


def test_role_vars_are_the_table() -> None:
    driver = yaml.safe_load((REPO_ROOT / "roles/nvidia_driver/vars/main.yml").read_text())
    assert driver["_nvidia_driver_profiles"] == list(_hardware.PROFILE_CHOICES)
    validate = yaml.safe_load((REPO_ROOT / "roles/gpu_validate/vars/main.yml").read_text())
    assert validate["_gpu_validate_profiles"] == _hardware.validation_expectations()


def test_profile_ids_and_parts_agree() -> None:
    for key, profile in _hardware.PROFILES.items():
        assert profile.pci_device_ids, key
        for device in profile.pci_device_ids:
            assert _hardware.PARTS[device].profile == key
    for part in _hardware.PARTS.values():
        assert part.profile is None or part.profile in _hardware.PROFILES
    # Names as pci.ids (pciutils/pciids) gives them for the ids the profiles and gates rely on.
    named = {
        0x2330: "H100 SXM5 80GB",
        0x2331: "H100 PCIe",
        0x2335: "H200 SXM 141GB",
        0x233B: "H200 NVL",
        0x2901: "B200",
        0x2909: "HGX B200 168GB",
        0x2941: "HGX GB200",
        0x31C2: "GB300",
        0x2329: "H20",
        0x2342: "GH200 120GB / 480GB",
    }
    assert {device: _hardware.PARTS[device].name for device in named} == named


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("0x233510DE", (0x2335, 0x10DE)),
        ("233510DE", (0x2335, 0x10DE)),
        ("000000DE", (0x0000, 0x00DE)),
        ("N/A", None),
        ("", None),
        (None, None),
        ("0x2335", None),
    ],
)
def test_parse_pci_device_id(raw: str | None, parsed: tuple[int, int] | None) -> None:
    assert _hardware.parse_pci_device_id(raw) == parsed


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("NVIDIA H100 80GB HBM3", "h100_hgx"),
        ("NVIDIA H100 PCIe", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H200", "h200_hgx"),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA GH200 480GB", None),
        ("NVIDIA B200", "b200_hgx"),
        ("NVIDIA GB200", "gb200_nvl72"),
        ("NVIDIA L40S", None),
        (None, None),
    ],
)
def test_profile_by_name(name: str | None, profile: str | None) -> None:
    assert _hardware.profile_by_name(name) == profile


def test_reported_memory_is_at_least_the_quoted_memory() -> None:
    # Known from a capture for every profile but b200_168gb_hgx.
    known = [profile for profile in _hardware.PROFILES.values() if profile.gpu_memory_mib]
    assert len(known) == len(_hardware.PROFILES) - 1
    for profile in known:
        assert profile.gpu_memory_mib * 1024 * 1024 / 1e9 >= profile.gpu_memory_gb


def test_the_168gb_b200_is_placed_for_its_own_memory() -> None:
    """pci.ids 0x2909 "HGX B200 168GB": the B200 stack, sized for 168 GB, not 180."""
    assert _hardware.part_by_pci(0x2909).profile == "b200_168gb_hgx"
    assert _hardware.profile_gpus("b200_168gb_hgx") == {
        "gpu_count": 8,
        "gpu_memory_gb": 168,
        "nvlink_domain_size": 8,
    }
    assert _hardware.profile_gpus("b200_hgx")["gpu_memory_gb"] == 180
