"""onprem.llm.gpu_facts end to end: a stand-in nvidia-smi and fixture /proc and /sys trees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.onprem.llm.plugins.modules import gpu_facts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
HOSTS = FIXTURES / "hosts"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)


def stand_in(tmp_path: Path, output: Path | str, rc: int = 0) -> str:
    """An executable that plays nvidia-smi: prints a fixture (or a message) and exits `rc`."""
    script = tmp_path / "nvidia-smi-stand-in"
    source = output if isinstance(output, Path) else tmp_path / "stand-in-output.txt"
    if not isinstance(output, Path):
        source.write_text(output)
    script.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-q -x" ] || { echo "unexpected arguments: $*" >&2; exit 2; }\n'
        f"cat '{source}'\n"
        f"exit {rc}\n"
    )
    script.chmod(0o755)
    return str(script)


def run_module(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        gpu_facts.main()
    result = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 0, result
    assert result["changed"] is False
    assert "failed" not in result
    return result


def host_args(host: str) -> dict[str, str]:
    return {"proc_root": str(HOSTS / host / "proc"), "sys_root": str(HOSTS / host / "sys")}


def test_hgx_h200_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = stand_in(tmp_path, FIXTURES / "h200_hgx.xml")
    facts = run_module(capsys, nvidia_smi_path=smi, **host_args("h200_hgx"))["ansible_facts"]
    gpu = facts["onprem_gpu"]
    assert gpu["problems"] == []
    assert gpu["hardware_profile"] == "h200_hgx"
    assert (gpu["gpu_count"], gpu["nvswitch_count"], gpu["nvlink5_present"]) == (8, 4, False)
    assert gpu["kernel_module_version"] == gpu["userspace_driver_version"] == "570.133.20"
    assert (gpu["driver_versions_match"], gpu["kernel_module_flavor"]) == (True, "open")
    assert (gpu["cuda_version"], gpu["fabric_state"]) == ("12.8", "Completed")
    assert gpu["gpus"][7]["pci_bus_id"] == "00000000:DF:00.0"
    assert gpu["gpus"][7]["memory_total_mib"] == 143771


def test_b200_nvlink5_read_from_infiniband_vpd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = stand_in(tmp_path, FIXTURES / "b200_hgx.xml")
    facts = run_module(capsys, nvidia_smi_path=smi, **host_args("b200_hgx"))["ansible_facts"]
    facts = facts["onprem_gpu"]
    assert (facts["nvlink5_present"], facts["nvswitch_present"]) == (True, False)
    assert facts["hardware_profile"] == "b200_hgx"


def test_gb200_tray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = stand_in(tmp_path, FIXTURES / "gb200_tray.xml")
    facts = run_module(capsys, nvidia_smi_path=smi, **host_args("gb200_tray"))["ansible_facts"]
    facts = facts["onprem_gpu"]
    assert (facts["hardware_profile"], facts["kernel_module_arch"]) == ("gb200_nvl72", "aarch64")
    assert facts["nvlink5_present"] is False  # switches live in separate NVLink switch trays


def test_ecc_errors_reach_the_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = stand_in(tmp_path, FIXTURES / "h200_hgx_ecc_errors.xml")
    args = host_args("h200_hgx_ecc_errors")
    sick = run_module(capsys, nvidia_smi_path=smi, **args)["ansible_facts"]["onprem_gpu"]["gpus"][5]
    assert sick["ecc_errors"]["volatile"] == {"corrected": 11, "uncorrected": 3}
    assert sick["remapped_rows"]["pending"] is True


def test_nvidia_smi_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-nvidia-smi"
    empty = tmp_path / "empty"
    empty.mkdir()
    facts = run_module(
        capsys, nvidia_smi_path=str(missing), proc_root=str(empty), sys_root=str(empty)
    )["ansible_facts"]["onprem_gpu"]
    assert facts["driver_loaded"] is False
    assert facts["gpu_count"] == 0
    assert facts["gpus"] == []
    assert facts["hardware_profile"] == "generic"
    assert facts["problems"] == [
        f"{missing} is not an executable file",
        "NVIDIA kernel module not loaded: /proc/driver/nvidia/version is absent",
        "nvidia-smi not found: the NVIDIA userspace driver is not installed",
    ]


def test_nvidia_smi_not_on_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    facts = run_module(capsys, proc_root=str(tmp_path), sys_root=str(tmp_path))
    assert facts["ansible_facts"]["onprem_gpu"]["problems"][-1] == (
        "nvidia-smi not found: the NVIDIA userspace driver is not installed"
    )


def test_nvidia_smi_fails_without_kernel_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = stand_in(tmp_path, NO_DRIVER + "\n", rc=9)
    facts = run_module(capsys, nvidia_smi_path=smi, proc_root=str(tmp_path), sys_root=str(tmp_path))
    gpu = facts["ansible_facts"]["onprem_gpu"]
    assert (gpu["driver_loaded"], gpu["gpu_count"], gpu["kernel_module_version"]) == (
        False,
        0,
        None,
    )
    assert gpu["problems"] == [
        "NVIDIA kernel module not loaded: /proc/driver/nvidia/version is absent",
        f"{smi} -q -x failed (rc 9): {NO_DRIVER}",
    ]


def test_hung_nvidia_smi_is_cut_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "nvidia-smi-stand-in-that-hangs"
    script.write_text("#!/bin/sh\necho '<?xml version=\"1.0\" ?>'\nexec sleep 30\n")
    script.chmod(0o755)
    facts = run_module(capsys, nvidia_smi_path=str(script), timeout=1, **host_args("h100_hgx"))[
        "ansible_facts"
    ]["onprem_gpu"]
    assert (facts["driver_loaded"], facts["gpu_count"]) == (True, 0)
    assert facts["problems"] == [f"{script} -q -x failed (rc 124): timed out after 1 s"]


def test_driver_upgraded_without_reboot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = tmp_path / "proc" / "driver" / "nvidia"
    proc.mkdir(parents=True)
    version = (HOSTS / "h200_hgx" / "proc/driver/nvidia/version").read_text()
    (proc / "version").write_text(version.replace("570.133.20", "570.124.06"))
    smi = stand_in(
        tmp_path,
        "Failed to initialize NVML: Driver/library version mismatch\n"
        "NVML library version: 570.133\n",
        rc=18,
    )
    facts = run_module(
        capsys, nvidia_smi_path=smi, proc_root=str(tmp_path / "proc"), sys_root=str(tmp_path)
    )["ansible_facts"]["onprem_gpu"]
    assert facts["driver_loaded"] is True
    assert (facts["kernel_module_version"], facts["userspace_driver_version"]) == (
        "570.124.06",
        "570.133",
    )
    assert facts["driver_versions_match"] is False
    assert any("reboot" in problem for problem in facts["problems"])


@pytest.mark.parametrize(
    ("fixture", "message"), [("malformed", "not valid XML"), ("empty", "printed nothing")]
)
def test_unreadable_output_does_not_fail_the_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fixture: str, message: str
) -> None:
    smi = stand_in(tmp_path, FIXTURES / f"{fixture}.xml")
    facts = run_module(capsys, nvidia_smi_path=smi, **host_args("h100_hgx"))["ansible_facts"]
    gpu = facts["onprem_gpu"]
    assert (gpu["driver_loaded"], gpu["gpu_count"]) == (True, 0)
    assert gpu["nvswitch_count"] == 4  # read from /proc even when nvidia-smi output is bad
    assert len(gpu["problems"]) == 1
    assert message in gpu["problems"][0]


def test_check_mode_returns_the_same_facts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = stand_in(tmp_path, FIXTURES / "h100_hgx.xml")
    args = {"nvidia_smi_path": smi, **host_args("h100_hgx")}
    normal = run_module(capsys, **args)
    checked = run_module(capsys, _ansible_check_mode=True, **args)
    assert checked["ansible_facts"] == normal["ansible_facts"]
    assert checked["ansible_facts"]["onprem_gpu"]["hardware_profile"] == "h100_hgx"


def test_unreadable_vpd_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = tmp_path / "sys" / "class" / "infiniband" / "mlx5_0" / "device"
    device.mkdir(parents=True)
    (device / "vpd").mkdir()  # reading a directory fails like an unreadable file would
    smi = stand_in(tmp_path, FIXTURES / "h100_hgx.xml")
    args = {"nvidia_smi_path": smi, "proc_root": str(HOSTS / "h100_hgx" / "proc")}
    facts = run_module(capsys, sys_root=str(tmp_path / "sys"), **args)["ansible_facts"]
    problems = facts["onprem_gpu"]["problems"]
    assert len(problems) == 1
    assert problems[0].startswith(f"cannot read {device / 'vpd'}: ")
    assert problems[0].endswith("(NVLink5 detection needs root)")


def test_bytes_that_are_not_utf8_and_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = (FIXTURES / "h200_hgx.xml").read_bytes()
    raw = raw.replace(
        b"<product_name>NVIDIA H200</product_name>", b"<product_name>\x1bH\xff</product_name>", 1
    )
    raw = raw.replace(b"<uuid>GPU-", b"<uuid>\x01GPU-\xc3\x28", 1)
    output = tmp_path / "smi.xml"
    output.write_bytes(raw)
    smi = stand_in(tmp_path, output)
    gpu = run_module(capsys, nvidia_smi_path=smi, **host_args("h200_hgx"))["ansible_facts"]
    gpu = gpu["onprem_gpu"]
    assert (gpu["gpu_count"], gpu["hardware_profile"]) == (8, "h200_hgx")  # by PCI id
    assert gpu["gpus"][0]["name"] == "H\ufffd"


def test_inventory_profile_override_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded here: where the warning goes depends on whether controller code was imported.
    warned: list[str] = []
    monkeypatch.setattr(
        gpu_facts.AnsibleModule, "warn", lambda self, message: warned.append(message)
    )
    smi = stand_in(tmp_path, FIXTURES / "h100_hgx.xml")
    result = run_module(capsys, nvidia_smi_path=smi, profile="h200_hgx", **host_args("h100_hgx"))
    gpu = result["ansible_facts"]["onprem_gpu"]
    assert (gpu["hardware_profile"], gpu["profile_source"]) == ("h200_hgx", "inventory")
    assert gpu["detected_profile"] == "h100_hgx"
    assert warned == [gpu["profile_override_note"]]
