"""Bad engine input fails in the validation play, before any host is touched, naming the variable.

Runs playbooks/validate_input.yml controller-side only against a throwaway inventory whose hosts
do not exist: an HGX H200 engine node (GPUs from its hardware profile) and a gateway whose
default backend is computed from the engine node's variables.
"""

from __future__ import annotations

import pytest
from validation_errors import assert_each_host_reports_its_case, one_host_per_case

API_KEY = "sk-engine-test-0123456789abcdef0123456789"
DIGEST = "sha256:" + "ab" * 32

LLAMA_70B = {"name": "llama-3.1-70b", "params_b": 70, "dtype": "bf16", "context_length": 8192}
LLAMA_8B = {"name": "llama-3.1-8b", "params_b": 8, "dtype": "bf16", "context_length": 8192}

GOOD_VARS = {
    "nvidia_driver_profile": "h200_hgx",
    "ansible_host": "10.20.1.11",
    "engine_mode": "container",
    "engine_container_image": f"registry.example.internal/vllm/vllm-openai@{DIGEST}",
    "engine_model": {
        "name": "llama-3.1-70b",
        "params_b": 70,
        "dtype": "bf16",
        "context_length": 8192,
    },
    "engine_model_source": {
        "type": "url",
        "url": "https://mirror.example.internal/models/llama-3.1-70b.tar.gz",
        "sha256": "cd" * 32,
    },
    "engine_api_key": API_KEY,
}


def inventory(engine_vars: dict) -> dict:
    return {
        "all": {
            "children": {
                "engine_nodes": {"hosts": {"h200-node-01": engine_vars}},
                "gateways": {
                    "hosts": {
                        "gateway-1": {
                            "haproxy_api_keys": {
                                "team-a": "sk-test-0123456789abcdef0123456789abcdef"
                            }
                        }
                    }
                },
            }
        }
    }


def test_good_input_passes(validate_input):
    result = validate_input(inventory(GOOD_VARS))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert API_KEY not in output


def test_native_cpu_host_passes(validate_input):
    native = {
        "engine_mode": "native",
        "engine_device": "cpu",
        "engine_model": {"name": "tiny"},
        "engine_native_wheelhouse": "/srv/wheelhouse",
        "engine_model_source": {"type": "path", "path": "/srv/staging/tiny"},
    }
    result = validate_input(inventory(native))
    assert result.returncode == 0, result.stdout + result.stderr


LUKS_KEY = "test-luks-key-0123456789abcdef0123456789"
LUKS = {
    "model_store_device": "/dev/disk/by-id/nvme-test-store",
    "model_store_encryption": "luks",
    "model_store_luks_key": LUKS_KEY,
}

BAD_INPUT = {
    "tensor parallel size above the host's GPUs": (
        {"engine_tensor_parallel_size": 16},
        ["engine_tensor_parallel_size", "16 is more than the host's 8 GPUs"],
    ),
    "model that does not fit": (
        {
            "engine_model": {
                "name": "llama-405b",
                "params_b": 405,
                "dtype": "fp32",
                "context_length": 8192,
            }
        },
        ["engine_model", "llama-405b does not fit"],
    ),
    "duplicate ports": (
        {"engine_ports": [8000, 8001, 8001, 8003]},
        ["engine_ports[2]", "port 8001 is listed twice"],
    ),
    "port of another service": (
        {"engine_base_port": 9398},
        ["engine_base_port", "engine ports overlap reserved_ports: 9400"],
    ),
    "unknown engine type": (
        {"engine_type": "sglang"},
        ["engine_type", "sglang"],
    ),
    "image without digest in production mode": (
        {"engine_container_image": "vllm/vllm-openai:latest"},
        ["engine_container_image must be pinned by digest", "engine_allow_unpinned_image"],
    ),
    "image archive without its sha256": (
        {
            "engine_container_image": "vllm/vllm-openai:v0.11.0",
            "engine_container_image_archive": "/srv/images/vllm.tar",
        },
        [
            "engine_container_image must be pinned by digest",
            "engine_container_image_archive_sha256",
        ],
    ),
    "model source URL without sha256": (
        {"engine_model_source": {"type": "url", "url": "https://mirror.example.internal/m.tar.gz"}},
        ["engine_model_source", "every download needs its sha256"],
    ),
    "mirror file without sha256": (
        {
            "engine_model_source": {
                "type": "mirror",
                "url": "https://mirror.example.internal/models/m",
                "files": [{"name": "config.json"}],
            }
        },
        ["engine_model_source", "every download needs its sha256"],
    ),
    "unknown engine device": (
        {"engine_device": "tpu"},
        ["engine_device", "tpu"],
    ),
    "native mode with a non-vLLM engine": (
        {"engine_mode": "native", "engine_type": "tgi"},
        ["engine_mode native runs vLLM only", "engine_type tgi"],
    ),
    "TLS for an engine without TLS options": (
        {
            "engine_type": "tgi",
            "engine_container_image": "ghcr.io/huggingface/tgi@sha256:" + "a" * 64,
        },
        ["engine_tls is true but engine_type tgi has no TLS option"],
    ),
    "a device the sandbox cannot take": (
        {"engine_native_devices": ["char-nvidia* rw", "/dev/nvidia0"]},
        ["engine_native_devices[1] ('/dev/nvidia0') must be a device and its access"],
    ),
    "negative shutdown grace": (
        {"engine_shutdown_grace_seconds": -5},
        ["engine_shutdown_grace_seconds (-5) must be 0 or more"],
    ),
    "negative restart allowance": (
        {"engine_health_max_restarts": -1},
        ["engine_health_max_restarts (-1) and", "must be 0 or more"],
    ),
    "unknown hardware without GPU facts": (
        {"nvidia_driver_profile": "generic"},
        ["engine_host_gpus", "the host's GPUs are unknown"],
    ),
    "two models of one host on overlapping GPUs": (
        {
            "engine_models": [
                {"model": LLAMA_70B, "gpus": [0, 1, 2, 3]},
                {"model": LLAMA_8B, "gpus": [3, 4, 5, 6, 7]},
            ]
        },
        ["engine_models[1].gpus: GPU 3 is also given to engine_models[0]"],
    ),
    "a model list with more GPUs than the host has": (
        {
            "engine_models": [
                {"model": LLAMA_70B, "gpus": [0, 1, 2, 3]},
                {"model": LLAMA_8B, "gpus": [4, 5, 6, 7, 8, 9]},
            ]
        },
        ["engine_models[1].gpus: GPU 8, 9 is not on this host (8 GPUs, 0-7)"],
    ),
    "a model of the list without its download checksum": (
        {
            "engine_models": [
                {
                    "model": LLAMA_8B,
                    "gpus": [0],
                    "source": {"type": "url", "url": "https://mirror.example.internal/m.tar.gz"},
                }
            ]
        },
        ["engine_models[0].source must be", "every download needs its sha256"],
    ),
    "an engine group outside the intermediate profile": (
        {"engine_tls_curves": ["P-521"]},
        ["engine_tls_curves must be some of X25519, P-256, P-384", "['P-521']"],
    ),
    "an engine suite with RSA key exchange": (
        {"engine_tls_ciphers": "AES128-GCM-SHA256"},
        ["engine_tls_ciphers must list TLS 1.2 suites", "['AES128-GCM-SHA256']"],
    ),
    # The model store (role model_store), which site.yml applies to engine hosts.
    "relative model store path": (
        {"model_store_path": "srv/models"},
        ["model_store_path", "absolute"],
    ),
    "unsupported model store filesystem": (
        {"model_store_fstype": "btrfs"},
        ["model_store_fstype", "xfs, ext4"],
    ),
    "model store device outside /dev": (
        {"model_store_device": "nvme1n1"},
        ["model_store_device", "/dev/"],
    ),
    "model store mode not octal": (
        {"model_store_mode": "rwxr-xr-x"},
        ["model_store_mode", "octal"],
    ),
    # Encryption at rest of the model store.
    "LUKS on a plain directory": (
        {"model_store_encryption": "luks", "model_store_luks_key": LUKS_KEY},
        ["model_store_encryption: luks needs model_store_device"],
    ),
    "LUKS without a key": (
        {**LUKS, "model_store_luks_key": ""},
        ["model_store_luks_key must hold 32 characters or more"],
    ),
    "LUKS key too short": (
        {**LUKS, "model_store_luks_key": "short-luks-key"},
        ["model_store_luks_key must hold 32 characters or more"],
    ),
    "an encryption method that does not exist": (
        {**LUKS, "model_store_encryption": "dm-crypt"},
        ["model_store_encryption", "none, luks"],
    ),
    "a clevis pin without a tang server": (
        {**LUKS, "data_volume_luks_unlock": "tang"},
        ["data_volume_luks_unlock: tang needs data_volume_luks_tang_servers"],
    ),
    "a tang server that is not a URL": (
        {**LUKS, "data_volume_luks_unlock": "tang", "data_volume_luks_tang_servers": ["tang1"]},
        ["data_volume_luks_tang_servers[0] must be an http(s):// URL", "'tang1'"],
    ),
    "a tang threshold above the servers": (
        {
            **LUKS,
            "data_volume_luks_unlock": "tang",
            "data_volume_luks_tang_servers": ["http://tang-1.example.internal"],
            "data_volume_luks_tang_threshold": 2,
        },
        ["data_volume_luks_tang_threshold must be 1 to 1", "got 2"],
    ),
    "TPM PCRs that are not numbers": (
        {**LUKS, "data_volume_luks_unlock": "tpm2", "data_volume_luks_tpm2_pcr_ids": "secure"},
        ["data_volume_luks_tpm2_pcr_ids must be PCR numbers", "'secure'"],
    ),
    "a mapper name with a slash": (
        {**LUKS, "model_store_luks_name": "models/0"},
        ["model_store_luks_name must be letters", "'models/0'"],
    ),
}


def test_every_bad_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One engine host per case, as an inventory with many mistakes is reported in one pass."""
    site = inventory({})
    site["all"]["children"]["engine_nodes"]["hosts"] = one_host_per_case(
        BAD_INPUT, "engine-", GOOD_VARS
    )
    result = validate_input(site)
    output = assert_rejected(result, [], "several bad engine hosts")
    assert_each_host_reports_its_case(output, BAD_INPUT, "engine-")
    assert API_KEY not in output
    assert LUKS_KEY not in output


def test_a_luks_model_store_unlocked_by_tang_passes(validate_input):
    tang = {
        **LUKS,
        "data_volume_luks_unlock": "tang",
        "data_volume_luks_tang_servers": [
            "http://tang-1.example.internal",
            "https://tang-2.example.internal:7500",
        ],
        "data_volume_luks_tang_threshold": 2,
    }
    result = validate_input(inventory({**GOOD_VARS, **tang}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert LUKS_KEY not in result.stdout + result.stderr


def test_two_models_on_their_own_gpus_pass(validate_input):
    models = [
        {"model": LLAMA_70B, "gpus": [0, 1, 2, 3], "source": GOOD_VARS["engine_model_source"]},
        {"model": LLAMA_8B, "gpus": [4, 5, 6, 7], "served_model_name": "small"},
    ]
    result = validate_input(inventory({**GOOD_VARS, "engine_models": models}))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unpinned_image_is_accepted_when_allowed(validate_input):
    lab = {**GOOD_VARS, "engine_container_image": "vllm/vllm-openai:latest"}
    result = validate_input(inventory({**lab, "engine_allow_unpinned_image": True}))
    assert result.returncode == 0, result.stdout + result.stderr


# One instance across two GB200 trays of one NVL72 rack, set on the rack's group as a site does.
MAVERICK_BF16 = {
    "name": "llama-4-maverick",
    "params_b": 400,
    "dtype": "bf16",
    "context_length": 8192,
    "attention_heads": 40,
}


def span_inventory(tray_2: dict | None = None, rack: dict | None = None) -> dict:
    rack_vars = {
        "nvidia_driver_profile": "gb200_nvl72",
        "nvidia_driver_imex_rack_group": "nvl72_rack1",
        "engine_mode": "container",
        "engine_container_image": GOOD_VARS["engine_container_image"],
        "engine_container_network": "host",
        "engine_model": MAVERICK_BF16,
        "engine_span_hosts": "{{ groups['nvl72_rack1'] }}",
        **(rack or {}),
    }
    trays = {
        "gb200-r1-t1": {"ansible_host": "10.30.1.11"},
        "gb200-r1-t2": {"ansible_host": "10.30.1.12", **(tray_2 or {})},
    }
    site = inventory(GOOD_VARS)
    site["all"]["children"]["engine_nodes"]["children"] = {
        "nvl72_rack1": {"hosts": trays, "vars": rack_vars}
    }
    return site


def test_an_instance_across_two_trays_passes(validate_input):
    result = validate_input(span_inventory())
    assert result.returncode == 0, result.stdout + result.stderr


SPAN_BAD_INPUT = {
    "two NVL72 racks": (
        {"nvidia_driver_imex_rack_group": "nvl72_rack2"},
        {},
        ["engine_span_hosts: the hosts are in 2 NVLink domains", "list trays of one rack"],
    ),
    "different GPU profiles": (
        {"nvidia_driver_profile": "b200_hgx"},
        {},
        ["the hosts of one instance need the same GPUs", "(b200_hgx)"],
    ),
    "a port clash on the head": (
        {},
        {"engine_span_master_port": 8000},
        ["engine_span_master_port: 8000 is also the instance's port on the head gb200-r1-t1"],
    ),
    "a bridged container network": (
        {},
        {"engine_container_network": "bridge"},
        ["engine_container_network: an instance across hosts (engine_span_hosts) needs host"],
    ),
    "a host outside engine_nodes": (
        {},
        {"engine_span_hosts": ["gb200-r1-t1", "gb200-r1-t2", "gateway-1"]},
        ["engine_span_hosts: gateway-1 lists [] and gb200-r1-t1 lists"],
    ),
    "a model one tray holds": (
        {},
        {"engine_model": {**MAVERICK_BF16, "dtype": "fp8"}},
        ["engine_span_hosts: llama-4-maverick fits on one host (tensor_parallel_size 4)"],
    ),
}


@pytest.mark.parametrize("case", sorted(SPAN_BAD_INPUT))
def test_bad_input_of_an_instance_across_hosts_is_rejected(validate_input, assert_rejected, case):
    tray_2, rack, expected = SPAN_BAD_INPUT[case]
    assert_rejected(validate_input(span_inventory(tray_2, rack)), expected, case)
