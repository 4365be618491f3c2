"""onprem.llm.engine_health's action run by ansible-playbook on localhost, against a local HTTP
server and a test stand-in systemctl (a script printing `systemctl show` properties).

An instance healthy at the first look is answered without the module (no
AnsiballZ_engine_health in -vvv), with the module's answer key by key (async runs the module);
an instance not healthy yet, or a unit that failed, reaches the module, which fails as it does.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.engine_health import (
    healthy_answer,
    judged_arguments,
)

from tests.unit.conftest import run_local_play

ACTIVE = "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n"
FAILED = "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=3\n"
_ASYNC = {"ansible_job_id", "finished", "results_file", "started", "stderr", "stdout",
          "stderr_lines", "stdout_lines", "invocation", "elapsed"}  # fmt: skip


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        del args


@pytest.fixture
def engine() -> Iterator[tuple[str, type[Health]]]:
    handler = type("EngineHealth", (Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health", handler
    server.shutdown()


def stand_in_systemctl(tmp_path: Path, properties: str) -> dict[str, str]:
    """PATH with a test stand-in systemctl first: `show` prints the given properties."""
    bin_dir = tmp_path / "stand-in-bin"
    bin_dir.mkdir(exist_ok=True)
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\n[ "$1" = show ] || exit 1\nprintf %s "{properties}"\n')
    systemctl.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run(tmp_path: Path, task: dict[str, Any], env: dict[str, str]):
    out = tmp_path / "answer.json"
    save = {"ansible.builtin.copy": {"content": "{{ answer | to_json }}", "dest": str(out)}}
    result = run_local_play(tmp_path, [{**task, "register": "answer"}, save], "-vvv", env=env)
    answer = json.loads(out.read_text()) if result.returncode == 0 else None
    out.unlink(missing_ok=True)
    return answer, "AnsiballZ_engine_health.py" in result.stdout, result.stdout


def health_task(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "onprem.llm.engine_health": {"url": url, "unit": "onprem-llm-engine@0.service", **extra}
    }


def test_a_healthy_instance_is_answered_without_the_module_as_the_module_answers(
    tmp_path: Path, engine: tuple[str, type[Health]]
) -> None:
    url, _handler = engine
    env = stand_in_systemctl(tmp_path, ACTIVE)
    ours, module_ran, output = run(tmp_path, health_task(url, timeout=5), env)
    assert ours is not None and not module_ran, output
    builtin, module_ran, output = run(
        tmp_path, {**health_task(url, timeout=5), "async": 60, "poll": 1}, env
    )
    assert builtin is not None and module_ran, output
    assert {k: v for k, v in ours.items() if k != "elapsed"} == {
        k: v for k, v in builtin.items() if k not in _ASYNC
    }
    assert ours["msg"] == f"onprem-llm-engine@0.service healthy at {url}"


@pytest.mark.parametrize(
    ("status", "properties", "reason"),
    [(503, ACTIVE, "not healthy after 1 s"), (200, FAILED, "unit failed")],
    ids=["not-ready", "unit-failed"],
)
def test_anything_else_reaches_the_module_which_fails_as_it_does(
    tmp_path: Path,
    engine: tuple[str, type[Health]],
    status: int,
    properties: str,
    reason: str,
) -> None:
    url, handler = engine
    handler.status = status
    env = stand_in_systemctl(tmp_path, properties)
    answer, module_ran, output = run(
        tmp_path, health_task(url, timeout=1, delay=1, journal_lines=0), env
    )
    assert answer is None and module_ran
    assert reason in output


def test_what_is_judged() -> None:
    base = {"url": "http://127.0.0.1:8000/health", "unit": "onprem-llm-engine@0.service"}
    assert judged_arguments(base) is not None
    assert judged_arguments({**base, "timeout": "30"})["timeout"] == 30
    assert judged_arguments({**base, "headers": {"Authorization": "x"}}) is None
    assert judged_arguments({**base, "url": "ftp://x"}) is None
    assert judged_arguments({**base, "delay": 0}) is None
    assert judged_arguments({**base, "ca_path": "~/ca.crt"}) is None
    judged = judged_arguments(base)
    assert healthy_answer(judged, f"onprem-llm-engine-health 200\r\n{ACTIVE}") is not None
    assert healthy_answer(judged, f"onprem-llm-engine-health 503\n{ACTIVE}") is None
    assert healthy_answer(judged, f"onprem-llm-engine-health 0\n{ACTIVE}") is None
    assert healthy_answer(judged, ACTIVE) is None
