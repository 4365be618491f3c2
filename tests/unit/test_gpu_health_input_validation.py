"""Bad dcgm and gpu_validate input fails in the validation play before any change, naming the
variable. Runs playbooks/validate_input.yml controller-side (no connection)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from validation_errors import assert_each_host_reports_its_case, one_host_per_case

H200_VARS = {"nvidia_driver_profile": "h200_hgx"}
BCRYPT = "$2b$12$8J8Mby1qIbHh4ag7vKeoYOP5yHW2qV52SV5Z2fVhtY.5gIWQx.GA6"
TLS = {
    "dcgm_exporter_tls_cert_file": "/etc/onprem-llm/tls/dcgm.crt",
    "dcgm_exporter_tls_key_file": "/etc/onprem-llm/tls/dcgm.key",
}


def run_validation(
    validate_input: Callable[[dict], subprocess.CompletedProcess[str]], host_vars: dict
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {
                    "children": {"hgx_h200": {"hosts": {"h200-1": {**H200_VARS, **host_vars}}}}
                },
                "monitoring": {"hosts": {"monitoring-1": {}}},
            }
        }
    }
    return validate_input(inventory)


def test_good_dcgm_and_validation_input_passes(validate_input):
    good = {
        **TLS,
        "dcgm_exporter_basic_auth_users": {"prometheus": BCRYPT},
        "dcgm_exporter_extra_counters": [
            {"field": "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "type": "gauge", "help": "Reasons"}
        ],
        "gpu_validate_skip_gates": ["container_cdi"],
        "gpu_validate_nccl_tests": True,
        "gpu_validate_nccl_min_bus_bandwidth_gbps": 350,
        "gpu_validate_expected_gpu_count": 8,
    }
    result = run_validation(validate_input, good)
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "dcgm version not a DCGM 4 release": (
        {"dcgm_version": "3.3.9"},
        ["dcgm_version must be a DCGM 4 release", "got '3.3.9'"],
    ),
    "exporter version of another DCGM release": (
        {"dcgm_exporter_version": "4.2.3-4.1.1"},
        ["dcgm_exporter_version <dcgm_version>-<exporter version>", "got '4.2.3-4.1.1'"],
    ),
    "DCGM CUDA major without a package": (
        {"dcgm_cuda_major": 11},
        ["dcgm_cuda_major", "12, 13"],
    ),
    "exporter TLS certificate without key": (
        {
            "dcgm_exporter_tls_cert_file": "/etc/onprem-llm/tls/dcgm.crt",
            "dcgm_exporter_tls_key_file": "",
        },
        ["dcgm_exporter_tls_cert_file and dcgm_exporter_tls_key_file go together"],
    ),
    "basic auth user without password": (
        {**TLS, "dcgm_exporter_basic_auth_users": {"prometheus": ""}},
        ["dcgm_exporter_basic_auth_users", "a user without one is refused"],
    ),
    "basic auth with a clear-text password": (
        {**TLS, "dcgm_exporter_basic_auth_users": {"prometheus": "s3cret-scrape"}},
        ["dcgm_exporter_basic_auth_users has a bcrypt hash of its password"],
    ),
    "basic auth without TLS": (
        {
            "dcgm_exporter_tls_cert_file": "",
            "dcgm_exporter_tls_key_file": "",
            "onprem_llm_plaintext_links": ["dcgm_exporter"],
            "dcgm_exporter_basic_auth_users": {"prometheus": BCRYPT},
        },
        ["dcgm_exporter_basic_auth_users needs them"],
    ),
    "exporter address without port": (
        {"dcgm_exporter_listen_address": "0.0.0.0"},
        ["dcgm_exporter_listen_address must be [ADDRESS]:PORT", "got '0.0.0.0'"],
    ),
    "extra counter that is not a DCGM field": (
        {"dcgm_exporter_extra_counters": [{"field": "GPU_TEMP", "type": "gauge"}]},
        ["dcgm_exporter_extra_counters entries need field"],
    ),
    "unknown gate in the skip list": (
        {"gpu_validate_skip_gates": ["ecc", "fabric_manager"]},
        ["gpu_validate_skip_gates: unknown gate(s) fabric_manager", "gates are driver_versions"],
    ),
    "nccl-tests threshold not positive": (
        {"gpu_validate_nccl_tests": True, "gpu_validate_nccl_min_bus_bandwidth_gbps": 0},
        ["gpu_validate_nccl_min_bus_bandwidth_gbps must be a positive bus bandwidth"],
    ),
    "expected GPU count not positive": (
        {"gpu_validate_expected_gpu_count": 0},
        ["gpu_validate_expected_gpu_count must be null", "(got 0)"],
    ),
    "container engine not supported": (
        {"gpu_validate_container_engine": "containerd"},
        ["gpu_validate_container_engine", "docker, podman"],
    ),
    "report directory not absolute": (
        {"gpu_validate_report_dir": "reports"},
        ["gpu_validate_report_dir must be an absolute path", "got 'reports'"],
    ),
}


def test_every_bad_gpu_health_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One GPU node per case, as an inventory with many mistakes is reported in one pass."""
    prefix = "h200-"
    nodes = one_host_per_case(BAD_INPUT, prefix, H200_VARS)
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {"children": {"hgx_h200": {"hosts": nodes}}},
                "monitoring": {"hosts": {"monitoring-1": {}}},
            }
        }
    }
    output = assert_rejected(validate_input(inventory), [], "several bad GPU nodes")
    # any_errors_fatal: nothing runs after validation, on any host.
    assert "monitoring-1" in output
    assert_each_host_reports_its_case(output, BAD_INPUT, prefix)


def test_secrets_of_bad_basic_auth_input_stay_out_of_the_log(validate_input):
    result = run_validation(
        validate_input, {**TLS, "dcgm_exporter_basic_auth_users": {"prometheus": "s3cret-scrape"}}
    )
    assert result.returncode != 0
    assert "s3cret-scrape" not in result.stdout + result.stderr
