"""DCGM, dcgm-exporter (TLS, basic auth) and the acceptance gates on a GB200 NVL72 tray stand-in."""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from gpu_checks import NODE_GATES, assert_gates_passed

testinfra_hosts = ["ansible://gpu-gb200"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]
GPUS = 4
REPORT = "/var/lib/onprem-llm/gpu-validate/report.json"
MODULE_VERSION = "/var/lib/nvidia-stand-in/proc/driver/nvidia/version"
IMAGE = "localhost/onprem-llm-cdi-check:stand-in"
HEALTH_COUNTERS = [
    "DCGM_EXP_XID_ERRORS_COUNT",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
]
CURL = "curl -fsS --cacert /etc/dcgm-exporter/tls/stand-in.crt"


@pytest.mark.parametrize("service", ["nvidia-dcgm", "dcgm-exporter"])
def test_services_enabled_and_running(host, service):
    assert host.service(service).is_enabled
    assert host.service(service).is_running


def test_dcgm_package_matches_cuda_13_and_is_held(host):
    assert host.package("datacenter-gpu-manager-4-cuda13").version == "1:4.4.1-1"
    assert "datacenter-gpu-manager-4-cuda13" in host.check_output("apt-mark showhold").split()


def test_web_config_has_tls_and_the_hashed_user_only(host):
    config = host.file("/etc/dcgm-exporter/web-config.yml")
    assert config.mode == 0o640
    assert config.group == "dcgm-exporter"
    text = config.content_string
    # The exporter's own copy of the configured certificate, readable by its user.
    assert 'cert_file: "/etc/dcgm-exporter/pki/server.crt"' in text
    copy = host.file("/etc/dcgm-exporter/pki/server.crt")
    assert copy.content == host.file("/etc/dcgm-exporter/tls/stand-in.crt").content
    key = host.file("/etc/dcgm-exporter/pki/server.key")
    assert (key.user, key.group, key.mode) == ("root", "dcgm-exporter", 0o640)
    assert "min_version: TLS12" in text
    assert 'prometheus: "$2b$12$8J8Mby1qIbHh4ag7vKeoYOP5yHW2qV52SV5Z2fVhtY.5gIWQx.GA6"' in text
    unit = host.file("/etc/systemd/system/dcgm-exporter.service").content_string
    assert "--web-config-file /etc/dcgm-exporter/web-config.yml" in unit


def test_exporter_refuses_plain_http_and_anonymous_scrapes(host):
    assert host.run("curl -fsS http://127.0.0.1:9400/metrics").rc != 0
    anonymous = host.run(f"{CURL} -o /dev/null -w '%{{http_code}}' https://localhost:9400/metrics")
    assert anonymous.stdout == "401"


def test_exporter_serves_every_gpu_over_tls_with_basic_auth(host):
    body = host.check_output(f"{CURL} -u prometheus:stand-in-scrape https://localhost:9400/metrics")
    temps = re.findall(r'^DCGM_FI_DEV_GPU_TEMP\{gpu="(\d)",.*modelName="NVIDIA GB200"', body, re.M)
    assert sorted(temps) == [str(i) for i in range(GPUS)]
    for counter in HEALTH_COUNTERS:
        assert len(re.findall(rf"^{counter}\{{", body, re.M)) == GPUS, counter


def read_report(host):
    return json.loads(host.file(REPORT).content_string)


def test_validation_report_passes_imex_and_the_fabric_health(host):
    report = read_report(host)
    assert report["profile"] == "gb200_nvl72"
    assert report["passed"] is True, report["failures"]
    gates = report["gates"]
    assert_gates_passed(gates, [*NODE_GATES, "imex", "container_cdi"])
    assert gates["imex"]["reason"] == "IMEX domain UP with 2 READY nodes"
    assert gates["fabric"] == {
        "status": "passed",
        "reason": "fabric state Completed and healthy on all 4 GPUs",
    }
    assert gates["container_cdi"]["reason"] == (
        "nvidia-smi -L in a podman container given nvidia.com/gpu=all lists all 4 GPUs"
    )
    fetched = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "gpu-validate" / "gpu-gb200.json"
    assert json.loads(fetched.read_text()) == report


def test_cdi_container_sees_each_gpu(host):
    # The gate's own command, re-run: the image was imported from the rootfs archive.
    assert host.run(f"podman image exists {IMAGE}").rc == 0
    devices = host.check_output(
        f"podman run --rm --network=none --device=nvidia.com/gpu=all {IMAGE} ls -1 /dev"
    )
    assert sorted(d for d in devices.split() if re.fullmatch(r"nvidia\d+", d)) == [
        f"nvidia{i}" for i in range(GPUS)
    ]
    # nvidia-smi, mounted by the CDI spec, lists the GPUs the container was given: all, or one.
    run = f"podman run --rm --network=none --device=nvidia.com/gpu={{}} {IMAGE} nvidia-smi -L"
    listed = host.check_output(run.format("all")).splitlines()
    assert [line.split(":")[0] for line in listed] == [f"GPU {i}" for i in range(GPUS)]
    [only] = host.check_output(run.format(2)).splitlines()
    assert only.startswith("GPU 0: NVIDIA GB200 (UUID: ") and only == listed[2].replace(
        "GPU 2", "GPU 0"
    )


def test_stale_kernel_module_fails_the_host_with_a_readable_reason(host, tmp_path):
    """A driver installed without the reboot: loaded module 580.95.05, userspace 580.126.09."""
    original = host.file(MODULE_VERSION).content_string
    stale = original.replace("580.126.09", "580.95.05")
    try:
        host.run(f"printf %s {shlex.quote(stale)} > {MODULE_VERSION}")
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
        playbook = SCENARIO_DIR.parents[1] / "playbooks" / "validate.yml"
        command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(playbook)]
        command += ["-e", f"validate_report_dir={tmp_path}"]
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=600, check=False
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert (
            "driver_versions: loaded kernel module 580.95.05 differs from userspace driver "
            "580.126.09: reboot to finish the driver change"
        ) in output
        report = json.loads((tmp_path / "gpu-gb200.json").read_text())
        assert report["failures"] == [
            f"driver_versions: {report['gates']['driver_versions']['reason']}"
        ]
        assert report["gates"]["imex"]["status"] == "passed"
    finally:
        host.run(f"printf %s {shlex.quote(original)} > {MODULE_VERSION}")
    assert host.file(MODULE_VERSION).content_string == original
