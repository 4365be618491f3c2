"""onprem.llm.user run by ansible-playbook on localhost.

Each answer is compared with the builtin module's for the same task, key by key, on a
throwaway system user made and removed here (these tests need root). Where the action must
answer without the module, the module is replaced by one that fails (a module named user in
the play's library path, which ansible.legacy.user resolves to first; ansible.builtin.user
still runs the real one): a run that passes made no module call.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.user import (
    judged_request,
    lookup_command,
    parse_lookup_output,
    unchanged_user_result,
)

from tests.unit.conftest import run_local_play

# The module's own diagnostics, which the action does not give.
_NOT_ANSWERED = {"invocation"}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="makes and removes a system user")


@pytest.fixture
def user_name() -> Iterator[str]:
    """A user name of this test's own; the user and its group are removed at the end."""
    name = f"onprem-llm-test-{secrets.token_hex(4)}"
    yield name
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", name], capture_output=True, check=False)


def registered(
    tmp_path: Path, tasks: list[dict[str, Any]], *args: str, failing: tuple[str, ...] = ()
) -> tuple[dict[str, Any] | None, subprocess.CompletedProcess[str]]:
    """What the tasks registered (each task's register name: its result), after the play."""
    out = tmp_path / "registered.json"
    names = [task["register"] for task in tasks if "register" in task]
    everything = "{" + ", ".join(f"'{name}': {name}" for name in names) + "}"
    dump = {
        "ansible.builtin.copy": {"content": "{{ " + everything + " | to_json }}", "dest": str(out)}
    }
    out.unlink(missing_ok=True)
    result = run_local_play(tmp_path, [*tasks, dump], *args, failing_modules=failing)
    answer = json.loads(out.read_text()) if result.returncode == 0 else None
    return answer, result


def answered(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in _NOT_ANSWERED}


# The argument sets of the roles' users (dcgm and gateway_service; node_exporter; engine), and
# one with the comment and the primary group asked.
ROLE_ARGUMENTS = {
    "no-home": {"system": True, "shell": "/usr/sbin/nologin", "home": "/nonexistent",
                "create_home": False},
    "home-not-asked": {"system": True, "shell": "/usr/sbin/nologin", "create_home": False},
    "home-made": {"system": True, "home": "HOME", "create_home": True,
                  "shell": "/usr/sbin/nologin"},
    "comment-and-group": {"system": True, "shell": "/usr/sbin/nologin", "home": "/nonexistent",
                          "create_home": False, "comment": "a test user", "group": "NAME"},
}  # fmt: skip


def with_user(arguments: dict[str, Any], name: str, home: Path) -> dict[str, Any]:
    """arguments for the user name, with HOME and NAME standing for home and name."""
    values = {"HOME": str(home), "NAME": name}
    return {"name": name} | {key: values.get(value, value) for key, value in arguments.items()}


@needs_root
@pytest.mark.parametrize("arguments", ROLE_ARGUMENTS.values(), ids=ROLE_ARGUMENTS.keys())
def test_an_existing_user_is_answered_as_the_module_without_it(
    tmp_path: Path, user_name: str, arguments: dict[str, Any]
) -> None:
    asked = with_user(arguments, user_name, tmp_path / "home")
    group = [{"ansible.builtin.group": {"name": user_name, "system": True}}] * ("group" in asked)
    tasks = [
        *group,
        {"ansible.builtin.user": asked, "register": "made"},
        {"ansible.builtin.user": asked, "register": "builtin"},
        {"onprem.llm.user": asked, "register": "ours"},
        {"onprem.llm.user": asked, "register": "ours_in_check_mode", "check_mode": True},
    ]
    answers, run = registered(tmp_path, tasks, failing=("user",))
    assert answers is not None, run.stdout + run.stderr
    assert answers["made"]["changed"] is True
    assert answers["builtin"]["changed"] is False
    assert answered(answers["ours"]) == answered(answers["builtin"])
    assert answered(answers["ours_in_check_mode"]) == answered(answers["builtin"])
    assert answers["ours"]["uid"] == pwd.getpwnam(user_name).pw_uid


# What must reach the module, asked of a user made with ROLE_ARGUMENTS["no-home"].
TO_THE_MODULE = {
    "missing-user": {"name": "MISSING"},
    "shell": {"shell": "/bin/sh"},
    "home": {"home": "/var/lib/onprem-llm-none"},
    "comment": {"comment": "another comment"},
    "group": {"group": "root"},
    "group-missing": {"group": "onprem-llm-no-such-group"},
    "home-to-make": {"create_home": True},
    "absent": {"state": "absent"},
    "other-option": {"uid": 4242},
    "expanded-shell": {"shell": "$SHELL"},
}


@needs_root
def test_a_user_to_make_or_change_or_anything_else_goes_to_the_module(
    tmp_path: Path, user_name: str
) -> None:
    asked = with_user(ROLE_ARGUMENTS["no-home"], user_name, tmp_path / "home")
    made, run = registered(tmp_path, [{"ansible.builtin.user": asked, "register": "made"}])
    assert made is not None, run.stdout + run.stderr
    missing = {"MISSING": f"{user_name}-none"}
    tasks = [
        {
            "onprem.llm.user": asked | {k: missing.get(v, v) for k, v in change.items()},
            "register": key.replace("-", "_"),
            "ignore_errors": True,
        }
        for key, change in TO_THE_MODULE.items()
    ]
    check_mode = {**tasks[1], "check_mode": True, "register": "shell_in_check_mode"}
    answers, run = registered(tmp_path, [*tasks, check_mode], failing=("user",))
    assert answers is not None, run.stdout + run.stderr
    for key, answer in answers.items():
        assert answer.get("msg") == "the user module was called", (key, answer)
    assert pwd.getpwnam(user_name).pw_shell == "/usr/sbin/nologin"


@needs_root
def test_a_changed_user_is_changed_by_the_module(tmp_path: Path, user_name: str) -> None:
    asked = with_user(ROLE_ARGUMENTS["no-home"], user_name, tmp_path / "home")
    tasks = [
        {"ansible.builtin.user": asked, "register": "made"},
        {"onprem.llm.user": asked | {"shell": "/bin/sh"}, "register": "in_check_mode",
         "check_mode": True},
        {"onprem.llm.user": asked | {"shell": "/bin/sh"}, "register": "changed"},
        {"onprem.llm.user": asked | {"shell": "/bin/sh"}, "register": "again"},
    ]  # fmt: skip
    answers, run = registered(tmp_path, tasks)
    assert answers is not None, run.stdout + run.stderr
    assert answers["in_check_mode"]["changed"] is True
    assert answers["changed"]["changed"] is True and answers["changed"]["shell"] == "/bin/sh"
    assert answers["again"]["changed"] is False and "invocation" not in answers["again"]
    assert pwd.getpwnam(user_name).pw_shell == "/bin/sh"


def test_an_existing_user_is_read_without_root(tmp_path: Path) -> None:
    """The user running the tests, asked as it is, whoever that is."""
    entry = pwd.getpwuid(os.geteuid())
    asked = {"name": entry.pw_name, "shell": entry.pw_shell, "home": entry.pw_dir,
             "comment": entry.pw_gecos, "create_home": False}  # fmt: skip
    tasks = [
        {"ansible.builtin.user": asked, "register": "builtin", "check_mode": True},
        {"onprem.llm.user": asked, "register": "ours"},
    ]
    answers, run = registered(tmp_path, tasks, failing=("user",))
    assert answers is not None, run.stdout + run.stderr
    assert answered(answers["ours"]) == answered(answers["builtin"])


PASSWD = "svc:x:998:997:a service:/nonexistent:/usr/sbin/nologin"


def test_the_lookup_is_read_with_a_terminal_s_line_ends() -> None:
    read = parse_lookup_output(
        f"onprem-llm-user\r\npasswd:{PASSWD}\r\ngroup:svc:x:997:\r\nhome:no\r\n"
    )
    assert read == {
        "passwd": ["svc", "x", "998", "997", "a service", "/nonexistent", "/usr/sbin/nologin"],
        "group": ["svc", "x", "997", ""],
        "home": False,
    }
    assert parse_lookup_output(f"some banner\nonprem-llm-user\npasswd:{PASSWD}\n") is not None
    assert parse_lookup_output("") is None
    assert parse_lookup_output("onprem-llm-user\n") is None
    assert parse_lookup_output(f"onprem-llm-user\npasswd:{PASSWD}\npasswd:{PASSWD}\n") is None
    assert parse_lookup_output("onprem-llm-user\npasswd:svc:x:998:997:/nonexistent\n") is None
    assert parse_lookup_output(f"onprem-llm-user\npasswd:{PASSWD}\nhome:maybe\n") is None


def test_what_is_judged_and_what_goes_to_the_module() -> None:
    dcgm = {"name": "svc", "system": True, "shell": "/usr/sbin/nologin",
            "home": "/nonexistent", "create_home": False}  # fmt: skip
    assert judged_request(dcgm) == {
        "name": "svc",
        "create_home": False,
        "shell": "/usr/sbin/nologin",
        "home": "/nonexistent",
        "comment": None,
        "group": None,
    }
    assert judged_request({"user": "svc", "createhome": "no"})["create_home"] is False
    assert judged_request({"name": "svc"})["create_home"] is True
    assert judged_request({"name": "svc", "group": "997"})["group"] == "997"
    for other in (
        {"state": "absent"},
        {"uid": 998},
        {"groups": ["video"]},
        {"append": True},
        {"name": "998"},
        {"name": "-o"},
        {"user": "svc"},
        {"system": "maybe"},
        {"create_home": None},
        {"createhome": True},
        {"home": "~svc"},
        {"shell": "${SHELL}"},
        {"comment": "two\nlines"},
        {"group": "1e3"},
    ):
        assert judged_request(dcgm | other) is None, other


def test_an_unchanged_user_result() -> None:
    read = parse_lookup_output(f"onprem-llm-user\npasswd:{PASSWD}\ngroup:svc:x:997:\nhome:no\n")
    assert read is not None
    asked = judged_request({"name": "svc", "shell": "/usr/sbin/nologin", "group": "svc",
                            "create_home": False})  # fmt: skip
    assert unchanged_user_result(asked, read) == {
        "changed": False,
        "name": "svc",
        "state": "present",
        "append": False,
        "move_home": False,
        "uid": 998,
        "group": 997,
        "comment": "a service",
        "home": "/nonexistent",
        "shell": "/usr/sbin/nologin",
    }
    assert unchanged_user_result(asked | {"group": "997"}, read) is not None
    assert unchanged_user_result(asked | {"group": "0997"}, read) is None
    assert unchanged_user_result(asked | {"shell": "/bin/sh"}, read) is None
    assert unchanged_user_result(asked | {"create_home": True}, read) is None
    assert unchanged_user_result(asked | {"name": "other"}, read) is None


def test_the_lookup_command() -> None:
    command = lookup_command("svc$", "video", create_home=True)
    assert "getent passwd 'svc$'" in command and "getent group video" in command
    assert "home:yes" in command
    assert "getent group" not in lookup_command("svc", None, create_home=False)
    assert "home:" not in lookup_command("svc", None, create_home=False)
