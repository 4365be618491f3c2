"""onprem.llm.wait_for run by ansible-playbook on localhost.

A port that already accepts is answered without the module (replaced by one that fails), with
the builtin's answer key by key; a port that does not accept, and any option the action does not
judge, reach the module, which waits and fails as it does.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.wait_for import judged_target

from tests.unit.conftest import run_local_play


@pytest.fixture
def open_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


def waited(tmp_path: Path, action: str, arguments: dict[str, Any], *failing: str):
    out = tmp_path / "registered.json"
    tasks = [
        {action: arguments, "register": "answer"},
        {"ansible.builtin.copy": {"content": "{{ answer | to_json }}", "dest": str(out)}},
    ]
    run = run_local_play(tmp_path, tasks, failing_modules=failing)
    return (json.loads(out.read_text()) if run.returncode == 0 else None), run


def test_an_open_port_is_answered_as_the_module_answers_it_without_the_module(
    tmp_path: Path, open_port: int
) -> None:
    arguments = {"host": "127.0.0.1", "port": open_port, "timeout": 5}
    builtin, run = waited(tmp_path, "ansible.builtin.wait_for", arguments)
    assert builtin is not None, run.stdout + run.stderr
    ours, run = waited(tmp_path, "onprem.llm.wait_for", arguments, "wait_for")
    assert ours is not None, run.stdout + run.stderr
    assert ours == builtin


def test_a_closed_port_reaches_the_module_which_fails_as_it_does(
    tmp_path: Path, closed_port: int
) -> None:
    arguments = {"host": "127.0.0.1", "port": closed_port, "timeout": 1}
    answer, run = waited(tmp_path, "onprem.llm.wait_for", arguments, "wait_for")
    assert answer is None and "the wait_for module was called" in run.stdout, run.stdout
    answer, run = waited(tmp_path, "onprem.llm.wait_for", arguments)
    assert answer is None and f"Timeout when waiting for 127.0.0.1:{closed_port}" in run.stdout


@pytest.mark.parametrize(
    "extra",
    [{"delay": 1}, {"search_regex": "x"}, {"state": "stopped"}, {"host": "::1"}],
    ids=["delay", "search-regex", "stopped", "ipv6"],
)
def test_any_other_option_reaches_the_module(
    tmp_path: Path, open_port: int, extra: dict[str, Any]
) -> None:
    arguments = {"host": "127.0.0.1", "port": open_port, "timeout": 1, **extra}
    answer, run = waited(tmp_path, "onprem.llm.wait_for", arguments, "wait_for")
    assert answer is None and "the wait_for module was called" in run.stdout, run.stdout


@pytest.mark.parametrize(
    ("arguments", "target"),
    [
        ({"port": "9100"}, ("127.0.0.1", 9100, 5)),
        (
            {"host": "gpu-01.example", "port": 9400, "connect_timeout": 2},
            ("gpu-01.example", 9400, 2),
        ),
        ({"port": "nine"}, None),
        ({"port": 0}, None),
        ({"host": "a;b", "port": 1}, None),
        ({}, None),
    ],
)
def test_what_is_judged(arguments: dict[str, Any], target: Any) -> None:
    assert judged_target(arguments) == target
