"""The container_runtime role's daemon.json merge (roles/container_runtime/vars/main.yml),
evaluated by ansible-playbook: the site's keys stay, the nvidia runtime is added, the default
runtime and CDI only when asked. The gpu_h200 scenario checks the file on a docker host."""

from __future__ import annotations

import base64
import json

import pytest

SITE = {
    "log-driver": "journald",
    "runtimes": {"crun": {"path": "/usr/bin/crun"}},
    "features": {"buildkit": True},
    "default-runtime": "crun",
}
NVIDIA = {"path": "/usr/bin/nvidia-container-runtime", "args": []}

CASES = {
    "site keys kept": {"existing": json.dumps(SITE)},
    "nothing yet": {"existing": None},
    "empty file": {"existing": "\n"},
    "default runtime and cdi": {
        "existing": '{"features": {"buildkit": true}}',
        "vars": {
            "container_runtime_nvidia_default_runtime": True,
            "container_runtime_docker_cdi": True,
        },
    },
    "cdi asked, engine without cdi": {
        "existing": "{}",
        "vars": {"container_runtime_docker_cdi": True, "container_runtime_cdi_supported": False},
    },
    "merged once more": {
        "existing": json.dumps({"log-driver": "journald", "runtimes": {"nvidia": NVIDIA}}),
    },
    "a list": {"existing": '["log-driver"]'},
}


@pytest.fixture(scope="module")
def merged(role_debug_messages) -> dict[str, dict]:
    tasks = []
    for name, case in CASES.items():
        registered = {"skipped": True}
        if case["existing"] is not None:
            registered = {"content": base64.b64encode(case["existing"].encode()).decode()}
        tasks.append(
            {
                "name": name,
                "ansible.builtin.debug": {
                    "msg": {
                        "is_mapping": "{{ _container_runtime_daemon_site is mapping }}",
                        "merged": "{{ _container_runtime_daemon_merged "
                        "if _container_runtime_daemon_site is mapping else {} }}",
                    }
                },
                "vars": {
                    "__container_runtime_daemon_existing": registered,
                    "container_runtime_cdi_supported": True,
                    "container_runtime_docker_cdi": False,
                    "container_runtime_nvidia_default_runtime": False,
                    **case.get("vars", {}),
                },
            }
        )
    return role_debug_messages("container_runtime", "Evaluate the docker daemon.json merge", tasks)


def test_the_site_keys_stay_and_the_nvidia_runtime_is_added(merged):
    daemon = merged["site keys kept"]["merged"]
    assert daemon == {
        "log-driver": "journald",
        "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": NVIDIA},
        "features": {"buildkit": True},
        "default-runtime": "crun",
    }


@pytest.mark.parametrize("case", ["nothing yet", "empty file"])
def test_a_host_without_a_configuration_gets_the_runtime_alone(merged, case):
    assert merged[case]["merged"] == {"runtimes": {"nvidia": NVIDIA}}


def test_default_runtime_and_cdi_only_when_asked(merged):
    assert merged["default runtime and cdi"]["merged"] == {
        "features": {"buildkit": True, "cdi": True},
        "default-runtime": "nvidia",
        "runtimes": {"nvidia": NVIDIA},
    }
    assert merged["cdi asked, engine without cdi"]["merged"] == {"runtimes": {"nvidia": NVIDIA}}


def test_the_merge_is_stable(merged):
    assert merged["merged once more"]["merged"] == {
        "log-driver": "journald",
        "runtimes": {"nvidia": NVIDIA},
    }


def test_a_configuration_that_is_not_an_object_is_refused(merged):
    assert merged["a list"]["is_mapping"] is False
    assert merged["site keys kept"]["is_mapping"] is True
