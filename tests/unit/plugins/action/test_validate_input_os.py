"""The operating-system check of onprem.llm.validate_input (the roles' first task): a host whose
facts name an OS the role does not support fails, naming the role, the host and its OS; a play
without facts is not checked."""

from __future__ import annotations

import sys
from pathlib import Path

from ansible_collections.onprem.llm.plugins.action.validate_input import os_error

from tests.unit.conftest import ansible_playbook

DEBIAN_12 = {
    "os_family": "Debian",
    "distribution": "Debian",
    "distribution_major_version": "12",
    "distribution_version": "12.8",
}


def test_os_families_and_releases() -> None:
    assert os_error("pki", "gpu-1", DEBIAN_12, ["Debian"], None) is None
    assert os_error("pki", "gpu-1", {}, ["Debian"], None) is None  # no facts: not checked
    rocky = {
        **DEBIAN_12,
        "os_family": "RedHat",
        "distribution": "Rocky",
        "distribution_version": "9.4",
    }
    assert os_error("pki", "gpu-1", rocky, ["Debian"], None) == (
        "pki: the role supports Debian hosts; gpu-1 runs Rocky 9.4"
    )
    releases = {"Debian": ["12"], "Ubuntu": ["22", "24"]}
    assert os_error("nvidia_driver", "gpu-1", DEBIAN_12, None, releases) is None
    trixie = {**DEBIAN_12, "distribution_major_version": "13", "distribution_version": "13.1"}
    assert os_error("nvidia_driver", "gpu-1", trixie, None, releases) == (
        "nvidia_driver: the role supports Debian 12 and Ubuntu 22/24 hosts; gpu-1 runs Debian 13.1"
    )


def test_a_play_with_facts_fails_on_an_os_the_role_does_not_support(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: true\n"
        "  gather_subset: [min]\n"
        "  tasks:\n"
        "    - onprem.llm.validate_input:\n"
        "        roles: [nccl]\n"
        "        os_families: [NotThisOne]\n"
    )
    result = ansible_playbook(
        "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
        str(playbook),
    )  # fmt: skip
    assert result.returncode != 0
    assert "nccl: the role supports NotThisOne hosts; localhost runs" in result.stdout, (
        result.stdout
    )
    assert "Input validation failed on 1 host(s)" in result.stdout
