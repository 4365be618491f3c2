"""DCGM, dcgm-exporter and the acceptance gates (gpu_validate) on an H200 HGX stand-in."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from gpu_checks import NODE_GATES, assert_gates_passed
from unit_sandbox import assert_sandboxed

testinfra_hosts = ["ansible://gpu-h200"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = SCENARIO_DIR.parents[1]
GPUS = 8
DCGM = "1:4.4.1-1"
EXPORTER = "4.4.1-4.6.0-1"
REPORT = "/var/lib/onprem-llm/gpu-validate/report.json"
HEALTH_COUNTERS = [
    "DCGM_EXP_XID_ERRORS_COUNT",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "DCGM_FI_DEV_POWER_VIOLATION",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
]


@pytest.mark.parametrize(
    "package",
    [
        "datacenter-gpu-manager-4-core",
        "datacenter-gpu-manager-4-cuda13",
        "datacenter-gpu-manager-exporter",
    ],
)
def test_dcgm_packages_pinned_and_held(host, package):
    version = EXPORTER if package.endswith("exporter") else DCGM
    assert host.package(package).version == version
    assert package in host.check_output("apt-mark showhold").split()
    pins = host.file("/etc/apt/preferences.d/dcgm-onprem-llm").content_string
    assert (
        f"Package: {package}\nPin: version {version.rsplit('-', 1)[0]}-*\nPin-Priority: 1001"
        in pins
    )


def test_cuda_major_of_dcgm_follows_the_toolkit(host):
    # cuda_toolkit_version 13.0: the -cuda13 package, not -cuda12.
    assert not host.package("datacenter-gpu-manager-4-cuda12").is_installed


@pytest.mark.parametrize("service", ["nvidia-dcgm", "dcgm-exporter"])
def test_services_enabled_and_running(host, service):
    unit = host.service(service)
    assert unit.is_enabled
    assert unit.is_running


def test_exporter_is_sandboxed_and_keeps_the_nvidia_devices(host):
    assert_sandboxed(host, "dcgm-exporter.service")
    allowed = host.check_output("systemctl show --property DeviceAllow --value dcgm-exporter")
    assert "char-nvidia* rw" in allowed


def test_host_engine_listens_on_localhost_5555_only(host):
    assert host.socket("tcp://127.0.0.1:5555").is_listening
    assert not host.socket("tcp://0.0.0.0:5555").is_listening
    assert "8 GPUs found" in host.check_output("dcgmi discovery -l")


def test_exporter_unit_uses_counters_file_and_host_engine(host):
    unit = host.file("/etc/systemd/system/dcgm-exporter.service").content_string
    assert "Ansible managed" in unit
    assert (
        "ExecStart=/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/onprem-llm-counters.csv "
        "-a :9400 -r localhost:5555\n"
    ) in unit
    assert "User=dcgm-exporter" in unit
    assert not host.file("/etc/dcgm-exporter/web-config.yml").exists


def test_counters_file_enables_the_health_counters(host):
    counters = host.file("/etc/dcgm-exporter/onprem-llm-counters.csv").content_string
    enabled = {
        line.split(",")[0] for line in counters.splitlines() if line and not line.startswith("#")
    }
    assert set(HEALTH_COUNTERS) | {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_USED"} <= enabled
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, " in counters


def metrics(host):
    return host.check_output("curl -fsS http://127.0.0.1:9400/metrics")


def test_exporter_serves_every_gpu_on_9400(host):
    assert host.socket("tcp://0.0.0.0:9400").is_listening
    body = metrics(host)
    temps = re.findall(
        r'^DCGM_FI_DEV_GPU_TEMP\{gpu="(\d)",UUID="GPU-[^"]+",.*modelName="NVIDIA H200"', body, re.M
    )
    assert sorted(temps) == [str(i) for i in range(GPUS)]


@pytest.mark.parametrize("counter", HEALTH_COUNTERS)
def test_exporter_serves_the_enabled_health_counters(host, counter):
    series = re.findall(rf"^{counter}\{{gpu=\"\d\"", metrics(host), re.M)
    assert len(series) == GPUS


def test_prometheus_dcgm_job_scrapes_the_exporter_port():
    scrape = (PROJECT_DIR / "roles/prometheus/vars/main.yml").read_text()
    assert re.search(r"dcgm:\n\s+inventory_group: gpu_nodes\n\s+port: 9400\n", scrape)


def read_report(host):
    return json.loads(host.file(REPORT).content_string)


def test_validation_report_passes_every_gate(host):
    report = read_report(host)
    assert report["host"] == "gpu-h200"
    assert report["profile"] == "h200_hgx"
    assert report["passed"] is True, report["failures"]
    gates = report["gates"]
    assert_gates_passed(gates, [*NODE_GATES, "fabric"])
    assert (
        gates["driver_versions"]["reason"]
        == "kernel module and userspace driver are both 580.126.09"
    )
    assert gates["fabric"]["reason"] == "fabric state Completed and healthy on all 8 GPUs"
    assert gates["imex"]["status"] == "skipped"
    # docker 20.10 resolves no CDI device names: the gate says so instead of passing.
    assert gates["container_cdi"] == {
        "status": "skipped",
        "reason": "docker on this host does not resolve CDI device names "
        "(docker 25, podman 4.1 or newer do)",
    }
    assert gates["dcgm_diag"]["status"] == "skipped"
    assert host.file(REPORT).mode == 0o644


def test_report_fetched_to_the_controller(host):
    fetched = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "gpu-validate" / "gpu-h200.json"
    assert json.loads(fetched.read_text()) == read_report(host)


def run_playbook(playbook: Path, report_dir: Path) -> subprocess.CompletedProcess:
    # JSON results: a YAML dump would fold the long failure message.
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(playbook)]
    command += ["-e", f"validate_report_dir={report_dir}", "-e", "gpu_validate_dcgm_diag=true"]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, check=False
    )


def test_ecc_errors_fail_the_host_with_a_readable_reason_then_a_healthy_host_passes(host, tmp_path):
    """playbooks/validate.yml on the stand-in switched to a recorded H200 with DBE errors."""
    try:
        sick = run_playbook(SCENARIO_DIR / "validate_ecc_errors.yml", tmp_path / "sick")
        output = sick.stdout + sick.stderr
        assert sick.returncode != 0, output
        assert "GPU validation failed on gpu-h200 (7 passed, 2 failed, 5 skipped)" in output
        assert "ecc: GPU 5 (00000000:C3:00.0) has 3 volatile uncorrected (DBE) ECC errors" in output
        assert "row_remapping: GPU 5 (00000000:C3:00.0) has a row remap pending" in output
        report = read_report(host)
        assert report["passed"] is False
        assert [f.split(":")[0] for f in report["failures"]] == ["ecc", "row_remapping"]
        # Every other gate was still evaluated; dcgmi diag ran against the host engine.
        assert report["gates"]["fabric"]["status"] == "passed"
        assert report["gates"]["dcgm_diag"] == {
            "status": "passed",
            "reason": "dcgmi diag -r 2 passed",
        }
        assert json.loads((tmp_path / "sick" / "gpu-h200.json").read_text()) == report
    finally:
        host.run("echo h200_hgx > /etc/nvidia-stand-in/profile")
    healthy = run_playbook(PROJECT_DIR / "playbooks" / "validate.yml", tmp_path / "healthy")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert read_report(host)["passed"] is True


def test_failing_dcgm_diag_fails_the_gate(host, tmp_path):
    # The dcgmi stand-in fails diag on the GPU named in this file, as real dcgmi reports a fault.
    host.run("echo 3 > /etc/nvidia-stand-in/dcgmi-diag-fail")
    try:
        run = run_playbook(PROJECT_DIR / "playbooks" / "validate.yml", tmp_path / "diag")
        assert run.returncode != 0, run.stdout + run.stderr
        report = read_report(host)
        assert report["gates"]["dcgm_diag"]["status"] == "failed"
        assert report["gates"]["dcgm_diag"]["reason"].startswith(
            "dcgmi diag -r 2 failed (rc 1): Memory Fail - GPU: 3"
        )
    finally:
        host.run("rm -f /etc/nvidia-stand-in/dcgmi-diag-fail")
