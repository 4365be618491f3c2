"""Service units sandboxed (systemd-analyze security, offline, on the controller): the engine's
unit templates rendered as the role renders them, including the GPU variant that no test host can
start, and the systemd_sandbox filter's own rules. The units running on the test hosts are scored
again by the scenarios (molecule/unit_sandbox.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.systemd import systemd_sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPOSURE_LIMIT = 4.0
_OVERALL = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def exposure(systemd_analyze: str, unit: Path) -> tuple[float, str]:
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = _OVERALL.search(result.stdout)
    assert match, f"no score for {unit.name}:\n{result.stdout}{result.stderr}"
    return float(match.group(1)), result.stdout


@pytest.fixture(scope="module")
def engine_units(run_role_play, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The engine's unit, rendered by ansible-playbook from the role's templates and defaults."""
    out = tmp_path_factory.mktemp("units")
    variants = {
        "native-gpu": {"engine_device": "gpu", "engine_mode": "native"},
        "native-cpu": {"engine_device": "cpu", "engine_mode": "native"},
        "container-docker": {"engine_mode": "container", "engine_container_runtime": "docker"},
        "container-podman": {"engine_mode": "container", "engine_container_runtime": "podman"},
    }
    role = REPO_ROOT / "roles" / "engine"
    tasks = [
        {
            "name": f"Render {name}",
            "ansible.builtin.template": {
                "src": str(
                    role
                    / "templates"
                    / ("engine-" + name.split("-", maxsplit=1)[0] + ".service.j2")
                ),
                "dest": str(out / f"{name}.service"),
                "mode": "0644",
            },
            "vars": settings,
        }
        for name, settings in variants.items()
    ]
    run_role_play("engine", "Render the engine's units", tasks)
    return {name: (out / f"{name}.service").read_text() for name in variants}


def _with_exec_start(unit: str, path: Path) -> Path:
    """The unit as systemd loads it: its ExecStart comes from the instance's drop-in."""
    path.write_text(unit.replace("[Service]\n", "[Service]\nExecStart=/usr/bin/true\n", 1))
    return path


@pytest.mark.parametrize("variant", ["native-gpu", "native-cpu", "container-docker"])
def test_engine_units_are_sandboxed(
    engine_units: dict[str, str], systemd_analyze: str, tmp_path: Path, variant: str
) -> None:
    unit = _with_exec_start(
        engine_units[variant], tmp_path / f"onprem-llm-engine-{variant}.service"
    )
    score, findings = exposure(systemd_analyze, unit)
    assert score <= EXPOSURE_LIMIT, findings


def test_a_gpu_engine_opens_only_nvidia_and_rdma_devices(engine_units: dict[str, str]) -> None:
    unit = engine_units["native-gpu"]
    assert "DevicePolicy=closed" in unit
    assert re.findall(r"^DeviceAllow=(.*)$", unit, re.M) == [
        "char-nvidia* rw",
        "char-infiniband_verbs rw",
    ]
    assert "PrivateDevices=true" not in unit
    # nvidia-uvm is loaded with full privileges: NoNewPrivileges voids nvidia-modprobe's setuid bit.
    assert "ExecStartPre=+/usr/bin/nvidia-modprobe -u -c=0" in unit
    assert "NoNewPrivileges=true" in unit


def test_a_cpu_engine_gets_no_devices(engine_units: dict[str, str]) -> None:
    unit = engine_units["native-cpu"]
    assert "PrivateDevices=true" in unit
    assert "DeviceAllow=" not in unit
    assert "nvidia-modprobe" not in unit


def test_a_docker_engine_unit_only_reaches_the_daemon_socket(engine_units: dict[str, str]) -> None:
    unit = engine_units["container-docker"]
    assert "RestrictAddressFamilies=AF_UNIX" in unit
    assert "PrivateNetwork=true" in unit
    assert "CapabilityBoundingSet=\n" in unit


def test_a_podman_engine_unit_is_not_sandboxed(engine_units: dict[str, str]) -> None:
    # podman runs the container inside the unit (mounts, namespaces, root capabilities); the
    # role's README says so and recommends docker or native mode where the score matters.
    assert "NoNewPrivileges" not in engine_units["container-podman"]


def test_the_floor_holds_for_every_account(systemd_analyze: str, tmp_path: Path) -> None:
    for account in ("service", "root"):
        unit = tmp_path / f"floor-{account}.service"
        user = "User=example\n" if account == "service" else ""
        unit.write_text(f"[Service]\n{user}ExecStart=/usr/bin/true\n{systemd_sandbox(account)}\n")
        score, findings = exposure(systemd_analyze, unit)
        assert score <= 2.5, findings


def test_local_sockets_only_means_a_private_network() -> None:
    lines = systemd_sandbox("root", address_families=["AF_UNIX"]).splitlines()
    assert "PrivateNetwork=true" in lines and "IPAddressDeny=any" in lines
    assert "PrivateNetwork=true" not in systemd_sandbox("service").splitlines()
    assert (
        "RestrictAddressFamilies=none" in systemd_sandbox("root", address_families=[]).splitlines()
    )


def test_only_services_of_their_own_account_lose_ipc_on_stop() -> None:
    assert "RemoveIPC=true" in systemd_sandbox("service").splitlines()
    assert "RemoveIPC=true" not in systemd_sandbox("root").splitlines()


@pytest.mark.parametrize(
    ("account", "options", "message"),
    [
        ("nobody", {}, "account must be one of"),
        ("service", {"read_write_paths": "/var/lib/x"}, "read_write_paths must be a list"),
        ("service", {"devices": "char-nvidia* rw"}, "devices must be a list"),
    ],
)
def test_bad_arguments_are_named(account: str, options: dict, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        systemd_sandbox(account, **options)


def test_only_a_kernel_log_reader_keeps_the_kernel_log() -> None:
    assert "ProtectKernelLogs=true" in systemd_sandbox("root").splitlines()
    assert "ProtectKernelLogs=true" not in systemd_sandbox("root", kernel_log=True).splitlines()
