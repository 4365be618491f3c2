"""onprem.llm.package_lists' action: the host's package state read once per run.

The decisions are tested as functions; a real ansible-playbook run on this machine's dpkg shows
which tasks reach the host (the reason says when the state answered) and that a fact cache does
not carry one run's state into the next.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.action.package_lists import (
    FROM_STATE_REASON,
    answer_from_state,
    run_id,
    state_after,
)

from tests.unit.conftest import _required_tool, ansible_playbook

RUN = "4242:987654"
STATE = {
    "run": RUN,
    "installed": {"haproxy": "2.6.12-1+deb12u2", "jq": "1.6-2.1", "jq:amd64": "1.6-2.1"},
    "held": ["jq", "nvidia-open"],
}


def test_run_id_is_the_parent_pid_and_its_start_time(tmp_path: Path) -> None:
    # stat(5): the command name may hold spaces and parentheses; the start time is field 22.
    fields = ["S"] + [str(number) for number in range(4, 30)]
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "stat").write_text(f"4242 (ansible (x) y) {' '.join(fields)}\n")
    assert run_id(4242, proc=str(tmp_path)) == "4242:22"
    assert run_id(4243, proc=str(tmp_path)) is None


def test_run_id_of_this_process_parent_is_stable() -> None:
    if not Path("/proc").is_dir():
        pytest.skip("no /proc: the action then always runs the module")
    first = run_id(os.getppid())
    assert first is not None
    assert run_id(os.getppid()) == first


def test_installed_packages_are_answered_from_the_state() -> None:
    answer = answer_from_state(["haproxy=2.6.12-1+deb12u2", "jq", "jq:amd64"], STATE, RUN)
    assert answer == {
        "changed": False,
        "installed": True,
        "held": ["jq"],
        "cache_updated": False,
        "reason": FROM_STATE_REASON,
        "missing": [],
    }


@pytest.mark.parametrize(
    ("packages", "state", "current_run"),
    [
        (["haproxy"], STATE, "4242:111"),
        (["haproxy"], STATE, None),
        (["haproxy"], {**STATE, "run": None}, RUN),
        (["haproxy"], None, RUN),
        (["haproxy"], "not a state", RUN),
        (["haproxy=2.6.13-1"], STATE, RUN),
        (["haproxy", "curl"], STATE, RUN),
        (["haproxy>=2.6"], STATE, RUN),
        (["haproxy=2.6.*"], STATE, RUN),
        (["./local.deb"], STATE, RUN),
    ],
    ids=[
        "another-run",
        "no-run-id",
        "dropped",
        "no-state",
        "garbage",
        "other-version",
        "one-absent",
        "at-least-needs-dpkg",
        "pattern",
        "local-deb",
    ],
)
def test_anything_else_asks_the_host(
    packages: list[str], state: Any, current_run: str | None
) -> None:
    assert answer_from_state(packages, state, current_run) is None


def test_a_call_with_nothing_to_install_keeps_the_state_it_read() -> None:
    result = {"installed": True, "package_state": {"installed": {"jq": "1.6"}, "held": []}}
    assert state_after(result, RUN) == {"run": RUN, "installed": {"jq": "1.6"}, "held": []}
    assert "package_state" not in result


def test_a_call_before_an_install_drops_the_state() -> None:
    """The apt task after it changes what dpkg knows: the next call reads the host again."""
    result = {"installed": False, "package_state": {"installed": {"jq": "1.6"}, "held": []}}
    assert state_after(result, RUN) == {"run": None}
    assert state_after({"installed": True}, RUN) == {"run": None}
    assert state_after({"installed": True, "package_state": {}}, None) == {"run": None}


def test_a_run_reads_the_host_once_and_a_fact_cache_does_not_carry_it(tmp_path: Path) -> None:
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
                " | map(attribute='installed') | list} | to_json }}",
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
        # The first call of each run reads the host, even with a state from the run before it
        # in the fact cache; the third's >= entry reads it too.
        assert [reason == FROM_STATE_REASON for reason in outcome["reasons"]] == [
            False,
            True,
            False,
            True,
        ], (run, outcome["reasons"])
        # The run's state is in the fact cache (its format is ansible-core's own).
        (cache_file,) = cache.glob("*localhost")
        assert "onprem_llm_package_state" in cache_file.read_text(), run
        (tmp_path / "results.json").unlink()
    shutil.rmtree(cache)
