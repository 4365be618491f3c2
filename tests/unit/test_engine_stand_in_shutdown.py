"""The stand-in engine stops on SIGTERM as vLLM's server does (uvicorn: stop accepting, let the
requests in flight finish, exit 0). As a container's first process a server without its own
handler ignores SIGTERM, and `docker stop --time 40` then waits 40 s for its SIGKILL on every
restart of a container-mode instance."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

STAND_IN = (
    Path(__file__).resolve().parents[1] / "stand_ins" / "openai_api" / "openai_api_stand_in.py"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(STAND_IN),
            *("--name", "unit", "--address", "127.0.0.1", "--port", str(port)),
            *("--shutdown-timeout", "30"),
        ]
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                assert answer.status == 200
                return server
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (
                "the stand-in did not start"
            )
            time.sleep(0.1)


def test_sigterm_stops_accepting_and_exits_0_at_once():
    port = _free_port()
    server = _start(port)
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0
    # No request was in flight: it does not wait for the shutdown timeout (30 s).
    assert time.monotonic() - started < 5
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    except OSError:
        pass
    else:
        raise AssertionError("the stand-in still answers after SIGTERM")
