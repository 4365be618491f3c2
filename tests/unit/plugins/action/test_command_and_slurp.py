"""onprem.llm.command and onprem.llm.slurp run by ansible-playbook on localhost.

Each answer is compared with the builtin module's for the same task, key by key. Where the
action must answer without the module, the module is replaced by one that fails (a module of
that name in the play's library path, which ansible.legacy.NAME resolves to first): a run that
passes made no module call.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.command import command_argv, shell_command
from ansible_collections.onprem.llm.plugins.action.slurp import parse_read_output, read_command

from tests.unit.conftest import run_local_play

# What differs between two runs of the same program, and the module's own diagnostics (the
# exception a failed_when hid, with 2.19).
_TIMES = {"start", "end", "delta", "invocation", "failed_when_suppressed_exception"}

PRINTS_BOTH = ["sh", "-c", "printf 'one\\ntwo  \\n\\n'; printf 'warning: a test\\n' >&2; exit"]


def registered(tmp_path: Path, task: dict[str, Any], *args: str, failing: tuple[str, ...] = ()):
    """The task's registered result, as JSON, after the play; the play's process."""
    out = tmp_path / "registered.json"
    tasks = [
        {**task, "register": "answer"},
        {"ansible.builtin.copy": {"content": "{{ answer | to_json }}", "dest": str(out)}},
    ]
    result = run_local_play(tmp_path, tasks, *args, failing_modules=failing)
    answer = json.loads(out.read_text()) if result.returncode == 0 else None
    return answer, result


def without_times(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in _TIMES}


@pytest.mark.parametrize(
    "arguments",
    [
        {"argv": [*PRINTS_BOTH[:2], PRINTS_BOTH[2] + " 0"]},
        {"argv": [*PRINTS_BOTH[:2], PRINTS_BOTH[2] + " 3"]},
        {"argv": [*PRINTS_BOTH[:2], PRINTS_BOTH[2] + " 0"], "strip_empty_ends": False},
        {"cmd": "printf '%s|' 'a b' \"c'd\" e"},
        {"argv": ["echo", "$HOME", "~"], "expand_argument_vars": False},
        {"argv": ["sh", "-c", "cat; echo; exit 3"], "stdin": "secret 'one'\n$two"},
        {"argv": ["od", "-c"], "stdin": "no newline", "stdin_add_newline": False},
        {"argv": ["false"], "creates": "/"},
        {"argv": ["false"], "removes": "/onprem-llm-nonexistent"},
        {"argv": ["echo", "ran"], "creates": "/onprem-llm-nonexistent", "removes": "/"},
    ],
    ids=[
        "ok",
        "non-zero",
        "no-strip",
        "cmd-split",
        "not-expanded",
        "stdin",
        "stdin-no-newline",
        "creates-exists",
        "removes-absent",
        "neither",
    ],
)
def test_command_answers_as_the_module_without_it(
    tmp_path: Path, arguments: dict[str, Any]
) -> None:
    failed_when = {"failed_when": "answer.rc not in [0, 3]"}
    builtin, run = registered(tmp_path, {"ansible.builtin.command": arguments, **failed_when})
    assert builtin is not None, run.stdout + run.stderr
    ours, run = registered(
        tmp_path, {"onprem.llm.command": arguments, **failed_when}, failing=("command",)
    )
    assert ours is not None, run.stdout + run.stderr
    assert without_times(ours) == without_times(builtin)
    assert {"start", "end", "delta"} <= ours.keys()


def test_a_non_zero_return_code_fails_the_task_as_the_module_does(tmp_path: Path) -> None:
    task = {"onprem.llm.command": {"argv": [*PRINTS_BOTH[:2], PRINTS_BOTH[2] + " 3"]}}
    answer, run = registered(tmp_path, task, failing=("command",))
    assert run.returncode != 0 and answer is None
    assert "non-zero return code" in run.stdout and '"rc": 3' in run.stdout, run.stdout


def test_stdin_is_not_on_the_hosts_command_line(tmp_path: Path) -> None:
    task = {"onprem.llm.command": {"argv": ["cat"], "stdin": "onprem-llm-secret"}, "no_log": True}
    answer, run = registered(tmp_path, task, "-vvvv", failing=("command",))
    assert answer is not None, run.stdout
    assert "onprem-llm-secret" not in run.stdout + run.stderr
    assert "b25wcmVtLWxsbS1zZWNyZXQK" not in run.stdout + run.stderr  # nor in base64


@pytest.mark.parametrize(
    ("arguments", "play_arguments"),
    [
        ({"argv": ["true"]}, ["--check"]),
        ({"argv": ["echo", "$HOME"]}, []),
        ({"argv": ["ls", "~"]}, []),
        ({"argv": ["true"], "chdir": "/"}, []),
        ({"argv": ["true"], "creates": "/et*"}, []),
        ({"argv": ["true"], "removes": "~/x"}, []),
        ({"argv": ["cat"], "stdin": ""}, []),
        ({"argv": ["onprem-llm-no-such-program"]}, []),
        ({"cmd": "echo 'unbalanced"}, []),
        ({"argv": []}, []),
    ],
    ids=[
        "check-mode",
        "variable",
        "home",
        "chdir",
        "creates-pattern",
        "removes-expanded",
        "empty-stdin",
        "not-found",
        "bad-quoting",
        "empty",
    ],
)
def test_anything_else_goes_to_the_module(
    tmp_path: Path, arguments: dict[str, Any], play_arguments: list[str]
) -> None:
    task = {"onprem.llm.command": arguments}
    answer, run = registered(tmp_path, task, *play_arguments, failing=("command",))
    assert answer is None
    assert "the command module was called" in run.stdout, run.stdout


def test_check_mode_off_for_the_task_runs_in_a_check_run(tmp_path: Path) -> None:
    tasks = [
        {
            "onprem.llm.command": {"argv": ["echo", "read in a check run"]},
            "check_mode": False,
            "register": "answer",
        },
        {"ansible.builtin.debug": {"var": "answer.stdout"}},
    ]
    run = run_local_play(tmp_path, tasks, "--check", failing_modules=("command",))
    assert run.returncode == 0, run.stdout
    assert '"answer.stdout": "read in a check run"' in run.stdout


def test_a_program_the_shell_cannot_find_gets_the_module_error(tmp_path: Path) -> None:
    task = {"onprem.llm.command": {"argv": ["onprem-llm-no-such-program"]}}
    answer, run = registered(tmp_path, task)
    assert answer is None
    assert "No such file or directory" in run.stdout, run.stdout


def test_command_parts() -> None:
    assert command_argv({"cmd": "blkid -p -o export /dev/sdb"}) == [
        "blkid",
        "-p",
        "-o",
        "export",
        "/dev/sdb",
    ]
    assert command_argv({"argv": ["a"], "cmd": "b"}) is None
    assert command_argv({"argv": ["a", 1]}) is None
    assert command_argv({"argv": ["a"], "strip_empty_ends": "maybe"}) is None
    assert "exec a 'b c'" in shell_command(["a", "b c"])


@pytest.mark.parametrize("content", [b"", b"line\n", bytes(range(256)) * 300])
def test_slurp_answers_as_the_module_without_it(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(content)
    builtin, run = registered(tmp_path, {"ansible.builtin.slurp": {"src": str(source)}})
    assert builtin is not None, run.stdout + run.stderr
    ours, run = registered(
        tmp_path, {"onprem.llm.slurp": {"path": str(source)}}, failing=("slurp",)
    )
    assert ours is not None, run.stdout + run.stderr
    assert without_times(ours) == without_times(builtin)
    assert base64.b64decode(ours["content"]) == content


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_slurp_sends_what_it_cannot_read_to_the_module(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "source"
    if kind == "directory":
        source.mkdir()
    elif kind == "fifo":
        os.mkfifo(source)
    task = {"onprem.llm.slurp": {"src": str(source)}}
    answer, run = registered(tmp_path, task, failing=("slurp",))
    assert answer is None
    assert "the slurp module was called" in run.stdout, run.stdout


def test_slurp_gives_the_module_error_for_a_missing_file(tmp_path: Path) -> None:
    answer, run = registered(tmp_path, {"onprem.llm.slurp": {"src": str(tmp_path / "none")}})
    assert answer is None
    assert "file not found" in run.stdout.lower(), run.stdout


def test_slurp_parts() -> None:
    assert parse_read_output("onprem-llm-slurp\r\naGVs\nbG8=\n") == "aGVsbG8="
    assert parse_read_output("onprem-llm-slurp\n") == ""
    assert parse_read_output("") is None
    assert parse_read_output("onprem-llm-slurp\nnot base64!\n") is None
    assert "base64 < '/a b'" in read_command("/a b")
