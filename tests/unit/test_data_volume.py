"""Data volumes: every role that keeps data declares its device, the data_volume role sets them
all up. Bad input fails in the validation play, before any host is touched, naming the
variable; the onprem.llm.data_volumes action returns what the role would set up, read on the
controller (no host is reached)."""

from __future__ import annotations

import pytest
from validation_errors import assert_each_host_reports_its_case

KEY = "test-data-volume-luks-key-0123456789abcdef"
SECRET = "another-vault-key-that-must-never-be-printed-0123"
DISK = "/dev/disk/by-id/nvme-TEST_DISK_"

# The action, for every host, as the data_volume role runs it; its result as JSON.
PLAY = [
    {
        "name": "Read every host's data volumes as the data_volume role does",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Read the volumes",
                "onprem.llm.data_volumes": {"hosts": "{{ ansible_play_batch }}"},
                "run_once": True,
            }
        ],
    }
]


REDIS_PASSWORDS = {
    f"redis_{user}_password": f"test-{user}-password-0123456789"
    for user in ("cache", "admin", "replication", "sentinel", "exporter")
}


def inventory(monitoring: dict | None = None, redis: dict | None = None, gpu: dict | None = None):
    """A monitoring and log host, a Redis host, and an engine node when gpu is given."""
    children = {
        "monitoring": {"hosts": {"monitoring-1": monitoring or {}}},
        "logs": {"hosts": {"monitoring-1": {}}},
        "redis": {"hosts": {"redis-1": {**REDIS_PASSWORDS, **(redis or {})}}},
    }
    if gpu is not None:
        children["gpu_nodes"] = {"hosts": {"gpu-1": {"nvidia_driver_profile": "h200_hgx", **gpu}}}
        children["engine_nodes"] = {"hosts": {"gpu-1": {}}}
    return {"all": {"children": children}}


@pytest.fixture
def volumes_of(controller_play):
    """{host: [volume, ...]} as the action returns them (None when the run failed), and the
    run's output."""

    def run(hosts: dict) -> tuple[dict[str, list[dict]] | None, str]:
        result, report = controller_play(PLAY, hosts)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            return None, output
        outcomes = report["plays"][0]["tasks"][0]["hosts"]
        (outcome,) = outcomes.values()  # run once, for every host
        return outcome["hosts"], output

    return run


def test_no_device_no_volume(volumes_of):
    volumes, output = volumes_of(inventory(gpu={}))
    assert volumes == {"monitoring-1": [], "redis-1": [], "gpu-1": []}, output


def test_each_role_declares_its_own_device_on_its_own_hosts(volumes_of):
    volumes, output = volumes_of(
        inventory(
            monitoring={
                "prometheus_storage_device": f"{DISK}1",
                "prometheus_storage_encryption": "luks",
                "prometheus_storage_luks_key": KEY,
                "audit_log_receiver_device": f"{DISK}2",
                "audit_log_receiver_fstype": "ext4",
            },
            redis={"redis_data_device": f"{DISK}3"},
            gpu={
                "model_store_device": f"{DISK}4",
                "model_store_encryption": "luks",
                "model_store_luks_key": KEY,
                # A role the host does not run declares nothing there.
                "redis_data_device": f"{DISK}5",
            },
        )
    )
    assert volumes is not None, output
    monitoring = {volume["declared_by"]: volume for volume in volumes["monitoring-1"]}
    assert sorted(monitoring) == ["audit_data_volumes[0]", "prometheus_data_volumes[0]"]
    prometheus = monitoring["prometheus_data_volumes[0]"]
    assert prometheus["path"] == "/var/lib/prometheus/metrics2"
    assert prometheus["device"] == f"{DISK}1"
    assert (prometheus["encryption"], prometheus["luks_name"]) == ("luks", "onprem-llm-prometheus")
    assert prometheus["fstype"] == "xfs" and prometheus["mount_options"] == "defaults,noatime"
    logs = monitoring["audit_data_volumes[0]"]
    assert (logs["path"], logs["fstype"], logs["encryption"]) == ("/var/log/remote", "ext4", "none")
    [redis] = volumes["redis-1"]
    assert (redis["path"], redis["device"]) == ("/var/lib/redis", f"{DISK}3")
    [store] = volumes["gpu-1"]
    assert (store["path"], store["luks_name"]) == ("/srv/models", "onprem-llm-models")
    assert store["luks_format_force"] is False


def test_the_hosts_own_volumes_join_the_roles(volumes_of):
    own = [{"path": "/var/lib/containers", "device": f"{DISK}9", "fstype": "ext4"}]
    volumes, output = volumes_of(inventory(redis={"data_volume_volumes": own}))
    assert volumes is not None, output
    [container_storage] = volumes["redis-1"]
    assert container_storage["declared_by"] == "data_volume_volumes[0]"
    assert container_storage["luks_name"] == "onprem-llm-var-lib-containers"


def test_two_roles_on_one_device_are_refused_naming_both(volumes_of):
    volumes, output = volumes_of(
        inventory(
            monitoring={
                "prometheus_storage_device": f"{DISK}1",
                "audit_log_receiver_device": f"{DISK}1",
            }
        )
    )
    assert volumes is None
    assert "prometheus_data_volumes[0] and audit_data_volumes[0] name the same device" in output


def test_a_key_never_reaches_the_output_of_a_refused_volume(volumes_of):
    own = [{"path": "/srv/scratch", "device": "sdb", "encryption": "luks", "luks_key": SECRET}]
    volumes, output = volumes_of(inventory(redis={"data_volume_volumes": own}))
    assert volumes is None
    assert "data_volume_volumes[0].device must be empty or a /dev/ path, got 'sdb'" in output
    assert SECRET not in output


ENCRYPTED_STORAGE = {
    "prometheus_storage_device": f"{DISK}1",
    "prometheus_storage_encryption": "luks",
    "prometheus_storage_luks_key": KEY,
}

BAD_INPUT = {
    "Prometheus' database encrypted without a key": (
        {"monitoring": {**ENCRYPTED_STORAGE, "prometheus_storage_luks_key": ""}},
        ["prometheus_storage_luks_key must hold 32 characters or more"],
    ),
    "Prometheus' database encrypted with no device": (
        {"monitoring": {**ENCRYPTED_STORAGE, "prometheus_storage_device": ""}},
        ["prometheus_storage_encryption: luks needs prometheus_storage_device"],
    ),
    "a Prometheus device outside /dev": (
        {"monitoring": {"prometheus_storage_device": "nvme1n1"}},
        ["prometheus_storage_device must be empty or a /dev/ path, got 'nvme1n1'"],
    ),
    "a filesystem the role does not make": (
        {"redis": {"redis_data_device": f"{DISK}3", "redis_data_fstype": "btrfs"}},
        ["redis_data_fstype", "xfs, ext4"],
    ),
    "Redis' files encrypted with a short key": (
        {
            "redis": {
                "redis_data_device": f"{DISK}3",
                "redis_data_encryption": "luks",
                "redis_data_luks_key": "short",
            }
        },
        ["redis_data_luks_key must hold 32 characters or more"],
    ),
    "the log receiver encrypted without a device": (
        {"monitoring": {"audit_log_receiver_encryption": "luks"}},
        ["audit_log_receiver_encryption: luks needs audit_log_receiver_device"],
    ),
    "Prometheus and a host volume on one device": (
        {
            "monitoring": {
                "prometheus_storage_device": f"{DISK}1",
                "data_volume_volumes": [{"path": "/srv/scratch", "device": f"{DISK}1"}],
            }
        },
        ["prometheus_data_volumes[0] and data_volume_volumes[0] name the same device"],
    ),
    "a host volume with an unknown key": (
        {"redis": {"data_volume_volumes": [{"path": "/srv/x", "device": f"{DISK}2", "fs": "x"}]}},
        ["data_volume_volumes[0] has unknown keys ['fs']"],
    ),
    "a host volume without a path": (
        {"redis": {"data_volume_volumes": [{"device": f"{DISK}2"}]}},
        ["data_volume_volumes[0] needs a path"],
    ),
    "a host volume on a relative path": (
        {"redis": {"data_volume_volumes": [{"path": "srv/x", "device": f"{DISK}2"}]}},
        ["data_volume_volumes[0].path must be an absolute path other than /, got 'srv/x'"],
    ),
    "a host volume with a mapper name with a slash": (
        {
            "redis": {
                "data_volume_volumes": [
                    {
                        "path": "/srv/x",
                        "device": f"{DISK}2",
                        "encryption": "luks",
                        "luks_key": KEY,
                        "luks_name": "x/y",
                    }
                ]
            }
        },
        ["data_volume_volumes[0].luks_name must be letters, digits"],
    ),
    "an unlock method that does not exist": (
        {"redis": {"data_volume_luks_unlock": "password"}},
        ["data_volume_luks_unlock", "keyfile, tang, tpm2"],
    ),
}


def test_bad_input_is_rejected_naming_the_variable(validate_input, assert_rejected):
    """One host per case in one validation run (a monitoring and log host, or a Redis host, as
    the case needs), as an inventory with many mistakes is reported in one pass; each case's
    message is in its own host's errors."""
    prefix = "host-"
    monitoring, redis = {}, {}
    for index, (group_vars, _expected) in enumerate(BAD_INPUT.values()):
        ((group, host_vars),) = group_vars.items()
        name = f"{prefix}{index:02d}"
        if group == "monitoring":
            monitoring[name] = host_vars
        else:
            redis[name] = {**REDIS_PASSWORDS, **host_vars}
    site = {
        "all": {
            "children": {
                "monitoring": {"hosts": monitoring},
                "logs": {"hosts": {name: {} for name in monitoring}},
                "redis": {"hosts": redis},
            }
        }
    }
    output = assert_rejected(validate_input(site), [], "several bad data volumes")
    assert_each_host_reports_its_case(output, BAD_INPUT, prefix)
    assert KEY not in output


def test_encrypted_volumes_everywhere_pass(validate_input):
    result = validate_input(
        inventory(
            monitoring={
                **ENCRYPTED_STORAGE,
                "audit_log_receiver_device": f"{DISK}2",
                "audit_log_receiver_encryption": "luks",
                "audit_log_receiver_luks_key": KEY,
                "data_volume_luks_unlock": "tpm2",
                "data_volume_luks_tpm2_pcr_ids": "0,7",
            },
            redis={
                "redis_data_device": f"{DISK}3",
                "redis_data_encryption": "luks",
                "redis_data_luks_key": KEY,
            },
        )
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert KEY not in result.stdout + result.stderr


def test_volumes_set_in_a_plays_vars_stop_the_run_naming_where_to_set_them(controller_play):
    # Every host's volumes are read from the inventory; a play's vars would be missed.
    play = [
        {
            **PLAY[0],
            "vars": {"data_volume_volumes": [{"path": "/srv/data", "device": f"{DISK}9"}]},
            "tasks": [
                {
                    "name": "Read the volumes",
                    "onprem.llm.data_volumes": {
                        "hosts": "{{ ansible_play_batch }}",
                        "volumes": "{{ data_volume_volumes }}",
                    },
                    "run_once": True,
                }
            ],
        }
    ]
    result, _report = controller_play(play, inventory(gpu={}))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "data_volume_volumes is set where the controller does not read it" in output
    assert "set it in the inventory (group_vars or host_vars) or as an extra variable" in output


def test_volumes_from_the_inventory_pass_the_same_check(controller_play):
    own = [{"path": "/srv/data", "device": f"{DISK}9"}]
    play = [
        {
            **PLAY[0],
            "tasks": [
                {
                    "name": "Read the volumes",
                    "onprem.llm.data_volumes": {
                        "hosts": "{{ ansible_play_batch }}",
                        "volumes": "{{ data_volume_volumes | default([]) }}",
                    },
                    "run_once": True,
                }
            ],
        }
    ]
    result, report = controller_play(play, inventory(monitoring={"data_volume_volumes": own}))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    (outcome,) = report["plays"][0]["tasks"][0]["hosts"].values()
    assert [volume["device"] for volume in outcome["hosts"]["monitoring-1"]] == [f"{DISK}9"]
