"""onprem.llm.engine_health end to end: systemctl, journalctl, HTTP and the clock stood in for."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.onprem.llm.plugins.modules import engine_health

UNIT = "onprem-llm-engine@0.service"
URL = "http://10.20.1.11:8000/health"
SYSTEMCTL = "/usr/bin/systemctl"
JOURNALCTL = "/usr/bin/journalctl"
# The last lines a vLLM unit logs when its model is missing, as `journalctl -o cat` prints them.
JOURNAL = (
    "INFO 11-28 03:20:11 [api_server.py:1885] vLLM API server version 0.11.0\n"
    "OSError: /srv/models/llama-3.1-8b-instruct does not appear to have a file named "
    "config.json.\n"
    "onprem-llm-engine@0.service: Main process exited, code=exited, status=1/FAILURE\n"
    "onprem-llm-engine@0.service: Failed with result 'exit-code'.\n"
)


def show(active: str, sub: str, restarts: int, result: str = "success", status: int = 0) -> str:
    code = 1 if result == "exit-code" else 0
    return (
        f"LoadState=loaded\nActiveState={active}\nSubState={sub}\nResult={result}\n"
        f"NRestarts={restarts}\nExecMainCode={code}\nExecMainStatus={status}\n"
    )


RUNNING = show("active", "running", 0)


def crashed(n: int) -> str:
    return show("activating", "auto-restart", n, "exit-code", 1)


class Response:
    """What open_health_url returns: a context manager with a status."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Host:
    """The managed host: a clock, systemd readings in turn, answers of the health URL in turn."""

    def __init__(self, readings: list[str], answers: list[int | Exception]) -> None:
        self.now = 5000.0
        self.readings = readings
        self.answers = answers
        self.commands: list[list[str]] = []
        self.requests: list[dict[str, Any]] = []
        self.sleeps: list[float] = []
        self.systemctl_rc = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def run_command(self, module: AnsibleModule, args: list[str], **_unused: Any) -> tuple:
        self.commands.append(list(args))
        if args[0] == SYSTEMCTL:
            if self.systemctl_rc:
                return self.systemctl_rc, "", "System has not been booted with systemd.\n"
            reading = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
            return 0, reading, ""
        if args[0] == JOURNALCTL:
            return 0, JOURNAL, ""
        raise AssertionError(f"unexpected command {args}")

    def open_health_url(
        self, url: str, headers: dict[str, str], timeout: float, context: Any = None
    ) -> Any:
        assert timeout == 10
        self.requests.append({"url": url, "headers": headers})
        self.now += 0.2  # a refused connection or an answer takes a moment
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if answer >= 400:
            raise urllib.error.HTTPError(url, answer, "error", None, None)  # type: ignore[arg-type]
        return Response(answer)


REAL_OPEN_HEALTH_URL = engine_health.open_health_url
REFUSED = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))


@pytest.fixture
def host_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def make(readings: list[str], answers: list[int | Exception]) -> Host:
        host = Host(readings, answers)
        monkeypatch.setattr(engine_health, "monotonic", host.monotonic)
        monkeypatch.setattr(engine_health, "sleep", host.sleep)
        monkeypatch.setattr(engine_health, "open_health_url", host.open_health_url)
        monkeypatch.setattr(
            AnsibleModule,
            "run_command",
            # A function, not the bound method: the module instance comes in as its first argument.
            lambda module, args, **kwargs: host.run_command(module, args, **kwargs),  # pylint: disable=unnecessary-lambda
        )
        monkeypatch.setattr(
            AnsibleModule,
            "get_bin_path",
            lambda module, name, required=False, opt_dirs=None: f"/usr/bin/{name}",
        )
        return host

    yield make


def run_module(capsys: pytest.CaptureFixture[str], **args: Any) -> tuple[int, dict[str, Any]]:
    with patch_module_args({"url": URL, "unit": UNIT, **args}), pytest.raises(SystemExit) as info:
        engine_health.main()
    return int(info.value.code or 0), json.loads(capsys.readouterr().out)


def test_healthy_after_model_load(host_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    host = host_factory([show("activating", "start", 0), RUNNING], [REFUSED, REFUSED, 503, 200])
    rc, result = run_module(capsys)
    assert rc == 0, result
    assert (result["changed"], result["status"], result["restarts"]) == (False, 200, 0)
    assert result["elapsed"] == 16  # three 5 s waits and four requests
    assert host.sleeps == [5, 5, 5]
    assert [request["url"] for request in host.requests] == [URL] * 4
    show_command = [
        SYSTEMCTL,
        "show",
        UNIT,
        "--property=LoadState,ActiveState,SubState,Result,NRestarts,ExecMainCode,ExecMainStatus",
    ]
    assert host.commands == [show_command] * 4  # no journal read when healthy
    assert result["unit_state"]["ActiveState"] == "active"


def test_healthy_after_restarts_below_the_limit(
    host_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    readings = [RUNNING, crashed(1), crashed(2), show("active", "running", 2, "exit-code")]
    host_factory(readings, [REFUSED, REFUSED, REFUSED, 200])
    rc, result = run_module(capsys)
    assert rc == 0, result
    assert result["restarts"] == 2


def test_crash_loop_fails_early_with_the_journal(
    host_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    host = host_factory([RUNNING, crashed(1), crashed(2), crashed(3)], [REFUSED])
    rc, result = run_module(capsys, delay=13)
    assert rc == 1
    assert result["failed"] is True
    assert result["reason"] == "crash loop: restarted 3 times in 40 s (Result=exit-code, status 1)"
    assert result["msg"].startswith(f"{UNIT} at {URL}: crash loop: restarted 3 times in 40 s")
    assert result["journal"] == JOURNAL.splitlines()
    assert result["msg"].endswith(
        f"Last 4 journal lines of {UNIT}:\n" + JOURNAL.rstrip("\n")
    )  # what the operator sees in the play output
    assert host.commands[-1] == [JOURNALCTL, "-u", UNIT, "-n", "30", "--no-pager", "-o", "cat"]
    assert (result["status"], result["restarts"], result["elapsed"]) == (None, 3, 40)
    assert len(host.sleeps) == 3  # not 900 s


def test_unit_failed(host_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    host_factory([show("failed", "failed", 0, "exit-code", 1)], [REFUSED])
    rc, result = run_module(capsys, journal_lines=10)
    assert rc == 1
    assert result["reason"] == "unit failed (Result=exit-code, status 1)"
    assert result["unit_state"]["ActiveState"] == "failed"


def test_unit_stopped(host_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    host_factory([RUNNING, show("inactive", "dead", 0)], [503, REFUSED])
    rc, result = run_module(capsys)
    assert rc == 1
    assert result["reason"] == "unit stopped (inactive/dead, Result=success)"


def test_timeout_waits_only_what_is_left(
    host_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    host = host_factory([RUNNING], [503])
    rc, result = run_module(capsys, timeout=12, journal_lines=0)
    assert rc == 1
    assert result["reason"] == "not healthy after 12 s (last answer: HTTP 503)"
    assert host.sleeps == pytest.approx([5, 5, 1.4])
    assert result["journal"] == []
    assert all(command[0] == SYSTEMCTL for command in host.commands)
    assert "journal lines" not in result["msg"]


def test_unreadable_unit_state(host_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    host = host_factory([RUNNING], [REFUSED])
    host.systemctl_rc = 1
    rc, result = run_module(capsys, journal_lines=0)
    assert rc == 1
    assert result["reason"] == (
        "cannot read the unit's state: System has not been booted with systemd."
    )


def test_headers_are_sent_and_never_logged(
    host_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    host = host_factory([RUNNING], [200])
    rc, result = run_module(capsys, headers={"Authorization": "Bearer sk-test-4f1c9e"})
    assert rc == 0, result
    assert host.requests[0]["headers"]["Authorization"] == "Bearer sk-test-4f1c9e"
    assert "sk-test-4f1c9e" not in json.dumps(result)


def test_check_mode_does_not_wait(host_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    host = host_factory([crashed(9)], [REFUSED])
    rc, result = run_module(capsys, _ansible_check_mode=True)
    assert rc == 0
    assert (result["changed"], result["msg"]) == (False, "check mode, not waited")
    assert (host.commands, host.requests, host.sleeps) == ([], [], [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"url": "10.20.1.11:8000/health"}, "url must start with http:// or https://"),
        ({"delay": 0}, "delay must be 1 or more, got 0"),
        ({"max_restarts": -1}, "max_restarts must be 0 or more, got -1"),
    ],
)
def test_bad_arguments(
    host_factory: Any, capsys: pytest.CaptureFixture[str], args: dict[str, Any], message: str
) -> None:
    host = host_factory([RUNNING], [200])
    rc, result = run_module(capsys, **args)
    assert rc == 1
    assert message in result["msg"]
    assert host.commands == []


class _Engine(http.server.BaseHTTPRequestHandler):
    """Answers 503 while loading, then 200, like vLLM's /health."""

    answers: ClassVar[list[int]] = [200]

    def do_GET(self) -> None:
        self.send_response(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_real_http_answers(
    host_factory: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = host_factory([RUNNING], [200])
    monkeypatch.setattr(engine_health, "open_health_url", REAL_OPEN_HEALTH_URL)
    monkeypatch.setattr(_Engine, "answers", [503, 503, 200])
    monkeypatch.setenv("http_proxy", "http://192.0.2.1:3128")  # must be bypassed
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        rc, result = run_module(capsys, url=url)
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 0, result
    assert (result["status"], len(host.sleeps)) == (200, 2)


def _pem_files(tmp_path: Path, certificates: Any) -> tuple[Path, Path, Path, Path]:
    """A site CA, an engine certificate and key it signed, and an unrelated CA."""
    site_ca = certificates.issue("site CA", ca=True)
    other_ca = certificates.issue("other CA", ca=True)
    # The engine's inventory name only: the health check calls 127.0.0.1.
    engine, engine_key = certificates.issue("engine-1", issuer=site_ca, dns=("engine-1",))
    files = {"ca.crt": site_ca[0], "other-ca.crt": other_ca[0], "server.crt": engine,
             "server.key": engine_key}  # fmt: skip
    for name, item in files.items():
        certificates.write(tmp_path / name, item)
    return tuple(tmp_path / name for name in ("ca.crt", "other-ca.crt", "server.crt", "server.key"))


@pytest.mark.parametrize(("ca_name", "healthy"), [("ca.crt", True), ("other-ca.crt", False)])
def test_real_https_answers_are_verified_against_the_site_ca(
    host_factory: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    certificates: Any,
    ca_name: str,
    healthy: bool,
) -> None:
    host_factory([RUNNING], [200])
    monkeypatch.setattr(engine_health, "open_health_url", REAL_OPEN_HEALTH_URL)
    monkeypatch.setattr(_Engine, "answers", [200])
    _ca, _other, certificate, key = _pem_files(tmp_path, certificates)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Engine)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/health"
        rc, result = run_module(capsys, url=url, ca_path=str(tmp_path / ca_name), timeout=3)
    finally:
        server.shutdown()
        server.server_close()
    if healthy:
        assert rc == 0 and result["status"] == 200, result
    else:
        assert rc != 0, result
        assert "CERTIFICATE_VERIFY_FAILED" in result["msg"], result["msg"]
