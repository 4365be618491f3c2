"""onprem.llm.uri run by ansible-playbook on localhost, against HTTP and HTTPS servers of the test.

Where the action must answer without the module, the module is replaced by one that fails (a
module of that name in the play's library path, which ansible.legacy.uri resolves to first): a
run that passes made no module call, and a case the action must leave to the module fails with
"the uri module was called".

The action's answers are compared with the builtin module's for the same task, key by key, less
the two keys two requests cannot share: the Date header (date) and elapsed.
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action import uri

from tests.unit.conftest import CertificateMaker, run_local_play

# What differs between two requests to the same server.
_PER_REQUEST = {"date", "elapsed"}
USER, PASSWORD = "operator", "onprem-llm-secret-password"
GOOD_AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    """The services the roles probe, and what a health check may meet."""

    def reply(self, status: int, body: bytes, content_type: str, *extra: tuple[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        text = "text/plain; charset=utf-8"
        if self.path == "/health":
            self.reply(200, b"", "application/octet-stream", ("X-Dup", "a"), ("X-Dup", "b"))
        elif self.path == "/loading":
            self.reply(503, b"loading\n", "text/plain", ("X-Dup", "a"), ("X-Dup", "b"))
        elif self.path == "/loading-json":
            self.reply(503, b'{"ready": false}', "application/json")
        elif self.path == "/metrics":
            self.reply(200, b"# HELP redis_up\nredis_up 1\n", "text/plain; version=0.0.4")
        elif self.path == "/json":
            self.reply(200, b'{"status": "ok", "n": [1, 2.5]}', "application/problem+json")
        elif self.path == "/cookie":
            cookies = ("Set-Cookie", "session=abc; Path=/"), ("Set-Cookie", "flag; Path=/")
            self.reply(200, b"ok", text, *cookies)
        elif self.path == "/latin1":
            self.reply(200, "café\n".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif self.path == "/gzip":
            self.reply(200, gzip.compress(b"zipped\n"), text, ("Content-Encoding", "gzip"))
        elif self.path == "/no-length":
            self.send_response(200)
            self.send_header("Content-Type", text)
            self.end_headers()
            self.wfile.write(b"until the connection closes\n")
        elif self.path == "/redirect":
            self.reply(302, b"", text, ("Location", "/health"))
        elif self.path == "/ready":
            if self.headers.get("Authorization") != GOOD_AUTH:
                self.reply(401, b"no", text, ("WWW-Authenticate", 'Basic realm="p"'))
            else:
                self.reply(200, f"ready for {USER}:{PASSWORD}\n".encode(), text)
        else:
            self.reply(404, b"not found\n", text)

    def do_POST(self) -> None:
        self.reply(200, b"posted\n", "text/plain")

    def log_message(self, *args: Any) -> None:
        del args


def serve(context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if context is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    yield from serve()


@pytest.fixture(scope="module")
def tls_site(
    tmp_path_factory: pytest.TempPathFactory, certificates: CertificateMaker
) -> Iterator[tuple[str, Path, Path]]:
    """An HTTPS server with a leaf of a CA of its own; (base URL, that CA's file, another CA's)."""
    directory = tmp_path_factory.mktemp("uri-tls")
    ca = certificates.issue("onprem-llm test CA", ca=True)
    other = certificates.issue("another CA", ca=True)
    leaf = certificates.issue("127.0.0.1", issuer=ca, ips=("127.0.0.1",))
    chain = certificates.write(directory / "server.pem", leaf[0], leaf[1])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    ca_file = certificates.write(directory / "ca.crt", ca[0])
    other_file = certificates.write(directory / "other.crt", other[0])
    for base in serve(context):
        yield base, ca_file, other_file


def quiet_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No proxy from the test's own environment, no ~/.netrc: the same for module and action."""
    env = {name: "" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    return {**env, "NETRC": str(tmp_path / "no-netrc"), **extra}


def registered(
    tmp_path: Path,
    task: dict[str, Any],
    *args: str,
    failing: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
):
    """The task's registered result, as JSON, after the play; the play's process."""
    out = tmp_path / "registered.json"
    out.unlink(missing_ok=True)
    tasks = [
        {**task, "register": "answer"},
        {"ansible.builtin.copy": {"content": "{{ answer | to_json }}", "dest": str(out)}},
    ]
    run = run_local_play(
        tmp_path, tasks, *args, failing_modules=failing, env=env or quiet_env(tmp_path)
    )
    answer = json.loads(out.read_text()) if run.returncode == 0 else None
    return answer, run


def compared(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in _PER_REQUEST}


def module_called(run: Any) -> bool:
    return "the uri module was called" in run.stdout


def assert_answered_as_the_module(tmp_path: Path, arguments: dict[str, Any], **task: Any) -> dict:
    builtin, run = registered(tmp_path, {"ansible.builtin.uri": arguments, **task})
    assert builtin is not None, run.stdout + run.stderr
    ours, run = registered(tmp_path, {"onprem.llm.uri": arguments, **task}, failing=("uri",))
    assert ours is not None, run.stdout + run.stderr
    assert compared(ours) == compared(builtin)
    assert set(ours) == set(builtin)
    return ours


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/health", {"status_code": [200, 503], "timeout": 10, "use_proxy": False}),
        ("/loading", {"status_code": [200, 503], "timeout": 10, "use_proxy": False}),
        ("/loading", {"status_code": "200,503"}),
        ("/loading-json", {"status_code": [200, 503]}),
        ("/loading", {"status_code": [503], "return_content": True}),
        ("/metrics", {"return_content": True}),
        ("/health", {"status_code": 200}),
        ("/health", {"status_code": "200", "method": "get"}),
        ("/json", {}),
        ("/json", {"return_content": True}),
        ("/cookie", {"return_content": True}),
        ("/latin1", {"return_content": True}),
        ("/gzip", {"return_content": True}),
        ("/gzip", {}),
        ("/no-length", {"return_content": True}),
    ],
    ids=[
        "engine-200",
        "engine-503",
        "status-string",
        "503-json",
        "503-content",
        "metrics-content",
        "gateway-status-int",
        "status-str-method-get",
        "json",
        "json-content",
        "cookie",
        "latin1",
        "gzip-content",
        "gzip",
        "no-length",
    ],
)
def test_an_accepted_status_is_answered_as_the_module_answers_it_without_the_module(
    tmp_path: Path, http_base: str, path: str, extra: dict[str, Any]
) -> None:
    answer = assert_answered_as_the_module(tmp_path, {"url": http_base + path, **extra})
    assert answer["url"] == http_base + path and answer["changed"] is False


def test_the_answers_carry_what_the_roles_read(tmp_path: Path, http_base: str) -> None:
    engine = assert_answered_as_the_module(
        tmp_path, {"url": http_base + "/loading", "status_code": [200, 503]}
    )
    assert engine["status"] == 503 and engine["msg"] == "HTTP Error 503: Service Unavailable"
    metrics = assert_answered_as_the_module(
        tmp_path, {"url": http_base + "/metrics", "return_content": True}
    )
    assert "redis_up 1\n" in metrics["content"] and metrics["msg"] == "OK (27 bytes)"
    assert metrics["cookies"] == {} and metrics["cookies_string"] == ""
    health = assert_answered_as_the_module(tmp_path, {"url": http_base + "/health"})
    assert health["x_dup"] == "a, b" and "content" not in health
    cookie = assert_answered_as_the_module(tmp_path, {"url": http_base + "/cookie"})
    assert cookie["cookies"]["session"] == "abc" and "flag" in cookie["cookies"]
    assert cookie["set_cookie"]
    unknown = assert_answered_as_the_module(tmp_path, {"url": http_base + "/no-length"})
    assert unknown["msg"] == "OK (unknown bytes)"


def test_https_with_ca_path_is_answered_as_the_module_answers_it(
    tmp_path: Path, tls_site: tuple[str, Path, Path]
) -> None:
    base, ca_file, _other = tls_site
    for path, extra in (
        ("/health", {"status_code": [200, 503], "timeout": 10, "use_proxy": False}),
        ("/loading", {"status_code": [200, 503], "timeout": 10, "use_proxy": False}),
        ("/metrics", {"return_content": True}),
        ("/health", {"status_code": 200, "validate_certs": True}),
    ):
        arguments = {"url": base + path, "ca_path": str(ca_file), **extra}
        assert_answered_as_the_module(tmp_path, arguments)


def basic_auth_arguments(base: str, ca_file: Path) -> dict[str, Any]:
    """Prometheus' readiness probe: basic auth over TLS, the content returned."""
    return {
        "url": base + "/ready",
        "ca_path": str(ca_file),
        "url_username": USER,
        "url_password": PASSWORD,
        "force_basic_auth": True,
        "return_content": True,
    }


def test_basic_auth_is_answered_as_the_module_answers_it_and_the_password_is_masked(
    tmp_path: Path, tls_site: tuple[str, Path, Path]
) -> None:
    base, ca_file, _other = tls_site
    arguments = basic_auth_arguments(base, ca_file)
    answer = assert_answered_as_the_module(tmp_path, arguments)
    assert answer["status"] == 200 and answer["content"] == f"ready for {USER}:********\n"
    # The prometheus role's task: no_log, the content not returned.
    quiet = {key: value for key, value in arguments.items() if key != "return_content"}
    assert_answered_as_the_module(tmp_path, quiet, no_log=True)


def test_the_password_is_in_no_output_of_the_action(
    tmp_path: Path, tls_site: tuple[str, Path, Path]
) -> None:
    base, ca_file, _other = tls_site
    arguments = basic_auth_arguments(base, ca_file)
    answer, run = registered(tmp_path, {"onprem.llm.uri": arguments}, "-vvvv", failing=("uri",))
    assert answer is not None, run.stdout + run.stderr
    output = run.stdout + run.stderr
    assert "EXEC" in output and "/bin/sh" in output
    assert PASSWORD not in output and GOOD_AUTH.split()[1] not in output


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/loading", {}),
        ("/loading", {"status_code": 200}),
        ("/health", {"status_code": [201]}),
        ("/redirect", {}),
        ("/redirect", {"status_code": [200, 302]}),
        ("/ready", {"url_username": USER, "url_password": PASSWORD}),
        ("/ready", {"url_username": USER, "url_password": PASSWORD, "force_basic_auth": False}),
        ("/ready", {}),
        ("/health", {"method": "POST"}),
        ("/health", {"body": "x"}),
        ("/health", {"headers": {"X-Probe": "1"}}),
        ("/health", {"follow_redirects": "none"}),
        ("/health", {"validate_certs": False}),
        ("/health", {"status_code": True}),
        ("/health", {"timeout": "soon"}),
        ("/health", {"user": USER, "password": PASSWORD, "force_basic_auth": True}),
        ("/health", {"ca_path": "~/ca.crt"}),
        ("/gone", {}),
    ],
    ids=[
        "503-default-status",
        "503-status-200",
        "200-not-accepted",
        "redirect",
        "redirect-accepted",
        "username-without-force",
        "username-force-false",
        "401",
        "post",
        "body",
        "headers",
        "follow-redirects",
        "validate-certs-false",
        "status-bool",
        "timeout-text",
        "aliases",
        "ca-path-home",
        "404",
    ],
)
def test_anything_else_reaches_the_module(
    tmp_path: Path, http_base: str, path: str, extra: dict[str, Any]
) -> None:
    task = {"onprem.llm.uri": {"url": http_base + path, **extra}}
    answer, run = registered(tmp_path, task, failing=("uri",))
    assert answer is None and module_called(run), run.stdout + run.stderr


def test_a_service_not_ready_gets_the_modules_failure(tmp_path: Path, http_base: str) -> None:
    task = {"onprem.llm.uri": {"url": http_base + "/loading"}}
    answer, run = registered(tmp_path, task)
    assert answer is None and "Status code was 503 and not [200]" in run.stdout, run.stdout


def test_a_redirect_gets_the_modules_answer(tmp_path: Path, http_base: str) -> None:
    answer, run = registered(tmp_path, {"onprem.llm.uri": {"url": http_base + "/redirect"}})
    assert answer is not None, run.stdout + run.stderr
    assert answer["redirected"] is True and answer["url"] == http_base + "/health"


def test_failed_requests_reach_the_module(tmp_path: Path, tls_site: tuple[str, Path, Path]) -> None:
    base, ca_file, other_file = tls_site
    refused = base.rsplit(":", 1)[0] + ":1"
    for arguments in (
        {"url": base + "/health", "ca_path": str(other_file)},
        {"url": base + "/health"},
        {"url": base + "/health", "ca_path": str(ca_file) + ".missing"},
        {"url": refused + "/health", "ca_path": str(ca_file)},
    ):
        answer, run = registered(tmp_path, {"onprem.llm.uri": arguments}, failing=("uri",))
        assert answer is None and module_called(run), (arguments, run.stdout + run.stderr)


def test_proxies_are_the_modules(tmp_path: Path, http_base: str) -> None:
    """With a proxy in the host's environment the module would use it (here, a dead one): the
    action does too, and the module answers; use_proxy false answers without it."""
    env = quiet_env(tmp_path, http_proxy="http://127.0.0.1:1", HTTP_PROXY="http://127.0.0.1:1")
    task = {"onprem.llm.uri": {"url": http_base + "/health"}}
    answer, run = registered(tmp_path, task, failing=("uri",), env=env)
    assert answer is None and module_called(run), run.stdout + run.stderr
    task = {"onprem.llm.uri": {"url": http_base + "/health", "use_proxy": False}}
    answer, run = registered(tmp_path, task, failing=("uri",), env=env)
    assert answer is not None and answer["status"] == 200, run.stdout + run.stderr


def test_a_netrc_entry_for_the_host_reaches_the_module(tmp_path: Path, http_base: str) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    task = {"onprem.llm.uri": {"url": http_base + "/ready"}}
    env = quiet_env(tmp_path, NETRC=str(netrc))
    answer, run = registered(tmp_path, task, failing=("uri",), env=env)
    assert answer is None and module_called(run), run.stdout + run.stderr


def test_check_mode_reaches_the_module(tmp_path: Path, http_base: str) -> None:
    task = {"onprem.llm.uri": {"url": http_base + "/health"}, "check_mode": True}
    answer, run = registered(tmp_path, task, failing=("uri",))
    assert answer is None and module_called(run), run.stdout + run.stderr


def test_judged_request_parts() -> None:
    assert uri.status_codes("200, 503") == [200, 503]
    assert uri.status_codes(200) == [200]
    assert uri.status_codes(["200", 503.0]) == [200, 503]
    assert uri.status_codes([True]) is None and uri.status_codes({"a": 1}) is None
    request = uri.judged_request(
        {"url": "https://127.0.0.1:8000/health", "ca_path": "/etc/ca.crt", "timeout": "10"}
    )
    assert request is not None and request["codes"] == [200]
    assert request["input"] == {
        "url": "https://127.0.0.1:8000/health",
        "ca": "/etc/ca.crt",
        "proxy": True,
        "timeout": 10,
        "auth": None,
        "netrc": True,
        "read": False,
    }
    for rejected in (
        {"url": "ftp://127.0.0.1/x"},
        {"url": "http://user:pw@127.0.0.1/x"},
        {"url": "http://127.0.0.1/a b"},
        {"url": "HTTP://127.0.0.1/"},
        {"url": "http:///x"},
        {"url": "http://127.0.0.1/", "ca_path": "ca.crt"},
        {"url": "http://127.0.0.1/", "ca_path": "/etc/$CA"},
        {"url": "http://127.0.0.1/", "method": "HEAD"},
        {"url": "http://127.0.0.1/", "url_password": 1234},
        {"url": "http://127.0.0.1/", "return_content": "maybe"},
        {"url": "http://127.0.0.1/", "timeout": True},
    ):
        assert uri.judged_request(rejected) is None, rejected
    forced = uri.judged_request(
        {"url": "http://h/", "url_username": "u", "url_password": "p", "force_basic_auth": "yes"}
    )
    assert forced is not None and forced["input"]["auth"] == "Basic dTpw"
    assert forced["secret"] == "p" and forced["input"]["netrc"] is False


def test_the_input_is_on_stdin_only() -> None:
    given = {"url": "http://h/", "auth": "Basic c2VjcmV0", "ca": None}
    command = uri.host_command("/usr/bin/python3", given)
    program, separator, heredoc = command.partition(f"<<'{uri._END}'\n")
    assert program.startswith("exec /usr/bin/python3 -c ") and separator
    assert "c2VjcmV0" not in program
    encoded, end = heredoc.splitlines()
    assert end == uri._END and json.loads(base64.b64decode(encoded)) == given


def test_parse_read() -> None:
    read = {"status": 200}
    encoded = base64.b64encode(json.dumps(read).encode()).decode()
    assert uri.parse_read(f"noise\r\n{uri._MARK} {encoded}\r\n") == read
    assert uri.parse_read(f"{uri._MARK} not-base64!") is None
    assert uri.parse_read("nothing") is None


def test_a_reserved_header_leaves_the_answer_to_the_module() -> None:
    request = uri.judged_request({"url": "http://h/"})
    assert request is not None
    read = {
        "status": 200,
        "url": "http://h/",
        "error": None,
        "headers": [["Content-Type", "text/plain"]],
        "cookies": [],
        "type": "text/plain",
        "charset": None,
        "length": None,
        "body": None,
        "elapsed": 0,
    }
    assert uri.module_answer(request, read) is not None
    for header in ("Status", "Msg", "Path", "Ansible-Facts", "X Y", "_x"):
        headers = [*read["headers"], [header, "1"]]
        assert uri.module_answer(request, {**read, "headers": headers}) is None, header
    assert uri.module_answer(request, {**read, "url": "http://h/other"}) is None
    assert uri.module_answer(request, {**read, "status": 302}) is None
    assert uri.module_answer(request, {**read, "charset": ["x"]}) is None
