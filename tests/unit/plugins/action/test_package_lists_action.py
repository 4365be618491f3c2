"""onprem.llm.package_lists' action: the host's package state read once per run.

The decisions are tested as functions; a real ansible-playbook run on this machine's dpkg shows
which tasks reach the host (the reason says when the state answered), that the next run reads
the host again, and that the state is neither a fact nor in a task's result.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.action.package_lists import (
    FROM_STATE_REASON,
    INSTALLED_REASON,
    answer_from_state,
    load_state,
    parse_read,
    parse_state,
    read_command,
    save_state,
    state_after,
    state_file,
)

from tests.unit.conftest import _required_tool, ansible_playbook, run_local_play

STATE = {
    "installed": {"haproxy": "2.6.12-1+deb12u2", "jq": "1.6-2.1", "jq:amd64": "1.6-2.1"},
    "held": ["jq", "nvidia-open"],
}


def test_the_state_is_kept_per_host_in_the_run_directory(tmp_path: Path) -> None:
    gpu, gateway = state_file(str(tmp_path), "gpu-01"), state_file(str(tmp_path), "gw-01")
    assert gpu != gateway and gpu.startswith(f"{tmp_path}/")
    assert load_state(gpu) is None
    save_state(gpu, STATE)
    assert load_state(gpu) == STATE and load_state(gateway) is None
    save_state(gpu, None)
    assert load_state(gpu) is None
    save_state(gpu, None)  # already gone
    Path(gateway).write_text("{not json")
    assert load_state(gateway) is None
    assert not list(Path(gpu).parent.glob("*.partial"))


def test_installed_packages_are_answered_from_the_state() -> None:
    answer = answer_from_state(["haproxy=2.6.12-1+deb12u2", "jq", "jq:amd64"], STATE)
    assert answer == {
        "changed": False,
        "installed": True,
        "held": ["jq"],
        "cache_updated": False,
        "reason": FROM_STATE_REASON,
        "missing": [],
    }


@pytest.mark.parametrize(
    ("packages", "state"),
    [
        (["haproxy"], None),
        (["haproxy"], "not a state"),
        (["haproxy"], {"held": []}),
        (["haproxy=2.6.13-1"], STATE),
        (["haproxy", "curl"], STATE),
        (["haproxy>=2.6"], STATE),
        (["haproxy=2.6.*"], STATE),
        (["./local.deb"], STATE),
    ],
    ids=[
        "no-state",
        "garbage",
        "no-installed",
        "other-version",
        "one-absent",
        "at-least-needs-dpkg",
        "pattern",
        "local-deb",
    ],
)
def test_anything_else_asks_the_host(packages: list[str], state: Any) -> None:
    assert answer_from_state(packages, state) is None


def test_the_shell_read_is_parsed_as_the_module_parses_it() -> None:
    # As dpkg-query prints it through a become terminal over ssh: lines end in \r\n.
    stdout = (
        "jq:amd64\tjq\thold ok installed\t1.6-2.1\r\n"
        "haproxy\thaproxy\tinstall ok installed\t2.6.12-1+deb12u2\r\n"
        "old\told\tdeinstall ok config-files\t1.0\r\n"
    )
    assert parse_state(stdout) == {
        "installed": {"jq:amd64": "1.6-2.1", "jq": "1.6-2.1", "haproxy": "2.6.12-1+deb12u2"},
        "held": ["jq"],
    }
    assert parse_state("") is None
    assert parse_state("dpkg-query: error\n") is None


PINNED = {"installed": {"nvidia-open": "580.126.09-1", "jq": "1.6-2.1"}, "held": ["nvidia-open"]}


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ({"nvidia-open": ["580.126.09-1", "575.57.08-1"]}, True),
        ({}, True),
        ({"nvidia-open": ["580.126.09-1", "580.126.09-2"]}, False),
    ],
    ids=["only-the-installed-matches", "not-offered", "another-matches"],
)
def test_a_pattern_pin_is_answered_when_no_other_offered_version_matches(
    offered: dict[str, list[str]], answered: bool
) -> None:
    """Another matching version may be newer, which only dpkg can tell: the module decides."""
    packages = ["nvidia-open=580.126.09-*", "jq"]
    answer = answer_from_state(packages, PINNED, offered)
    assert (answer is not None) is answered
    if answer is not None:
        assert answer["installed"] is True and answer["held"] == ["nvidia-open"]
    # Without the offered versions (the state kept from an earlier call) a pattern is not judged.
    assert answer_from_state(packages, PINNED) is None
    assert answer_from_state(["nvidia-open=575.*"], PINNED, offered) is None


def test_the_offered_versions_are_read_only_for_pattern_entries() -> None:
    assert "madison" not in read_command(["jq", "haproxy=2.6.12-1"])
    command = read_command(["nvidia-open=580.126.09-*", "jq", "nvidia-open=580.*"])
    assert command.endswith("apt-cache madison nvidia-open 2>/dev/null")
    # As a become terminal prints it.
    state, offered = parse_read(
        "nvidia-open\tnvidia-open\thold ok installed\t580.126.09-1\r\n"
        "onprem-llm-offered-versions\r\n"
        "nvidia-open | 580.126.09-1 | file:/srv/nvidia-mirror/cuda  Packages\r\n"
    )
    assert state == {"installed": {"nvidia-open": "580.126.09-1"}, "held": ["nvidia-open"]}
    assert offered == {"nvidia-open": ["580.126.09-1"]}


@pytest.mark.parametrize(
    ("packages", "module_runs"),
    [(["dpkg", "coreutils"], False), (["dpkg>=0"], True), (["onprem-llm-not-a-package"], True)],
    ids=["installed", "at-least", "absent"],
)
def test_the_first_call_starts_the_module_only_when_the_shell_read_cannot_answer(
    tmp_path: Path, packages: list[str], module_runs: bool
) -> None:
    _required_tool("dpkg-query", "run the unit tests on a Debian or Ubuntu machine")
    task = {"onprem.llm.package_lists": {"packages": packages}, "register": "lists"}
    shown = {"ansible.builtin.debug": {"msg": "reason={{ lists.reason }}"}}
    result = run_local_play(tmp_path, [task, shown], "--check", "-vvv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("AnsiballZ_package_lists.py" in result.stdout) is module_runs
    if not module_runs:
        assert f"reason={INSTALLED_REASON}" in result.stdout


def test_a_call_with_nothing_to_install_keeps_the_state_it_read() -> None:
    result = {"installed": True, "package_state": {"installed": {"jq": "1.6"}, "held": []}}
    assert state_after(result) == {"installed": {"jq": "1.6"}, "held": []}
    assert "package_state" not in result


def test_a_call_before_an_install_drops_the_state() -> None:
    """The apt task after it changes what dpkg knows: the next call reads the host again."""
    result = {"installed": False, "package_state": {"installed": {"jq": "1.6"}, "held": []}}
    assert state_after(result) is None
    assert "package_state" not in result
    assert state_after({"installed": True}) is None


def test_a_run_reads_the_host_once_and_keeps_the_state_out_of_results(
    tmp_path: Path,
) -> None:
    _required_tool("dpkg-query", "run the unit tests on a Debian or Ubuntu machine")
    package = "dpkg"  # installed wherever dpkg-query is
    tasks = [
        {"onprem.llm.package_lists": {"packages": [package]}, "register": "first"},
        {"onprem.llm.package_lists": {"packages": [package, "coreutils"]}, "register": "second"},
        # Only dpkg orders versions: a >= entry goes to the host, and keeps the state.
        {"onprem.llm.package_lists": {"packages": [f"{package}>=0"]}, "register": "third"},
        {"onprem.llm.package_lists": {"packages": ["coreutils"]}, "register": "fourth"},
        {
            "ansible.builtin.copy": {
                "dest": str(tmp_path / "results.json"),
                "content": "{{ {'reasons': [first, second, third, fourth] | map(attribute='reason')"
                " | list, 'installed': [first, second, third, fourth]"
                " | map(attribute='installed') | list, 'results': [first, second, third, fourth]"
                "} | to_json }}",
                "mode": "0644",
            },
            "check_mode": False,
        },
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    )
    cache = tmp_path / "facts"
    env = {
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
        "ANSIBLE_NOCOLOR": "1",
    }
    args = ["-i", "localhost,", "-c", "local", "--check", str(playbook),
            "-e", f"ansible_python_interpreter={sys.executable}"]  # fmt: skip
    for run in (1, 2):
        result = ansible_playbook(*args, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        outcome = json.loads((tmp_path / "results.json").read_text())
        assert outcome["installed"] == [True, True, True, True], run
        # The first call of each run reads the host; the third's >= entry reads it too.
        assert [reason == FROM_STATE_REASON for reason in outcome["reasons"]] == [
            False,
            True,
            False,
            True,
        ], (run, outcome["reasons"])
        # The state is in no result: not as a fact, not printed with -v, not in the audit log.
        assert "package_state" not in json.dumps(outcome["results"]), run
        (tmp_path / "results.json").unlink()
    shutil.rmtree(cache)
