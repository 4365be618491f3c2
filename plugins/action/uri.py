# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.uri: ansible.builtin.uri, answered by one shell command for a plain
GET whose answer has a status the task accepts.

The roles probe their local services' health with uri on every run, and the module is a Python
start on the host each time. The host always has the Python Ansible runs there: a short script
of its standard library (urllib, as the module uses, with the module's handlers: its proxy
rule, the CA file, no redirect followed, a cookie jar) makes the request from the host, and the
answer is built from what it read as the module builds its own (status, url, msg, redirected,
elapsed, changed, cookies, cookies_string, the response headers lower-cased with '-' as '_',
content with return_content, json for a JSON type, the password masked as the module masks it).
The script and its inputs (the Authorization header made from url_password) reach the host's
Python on stdin, never on a command line.

Judged: url (http or https, no credentials in it), ca_path, status_code, return_content,
timeout, use_proxy, validate_certs (true), method GET, and url_username with url_password and
force_basic_auth true (the module's Authorization header). Anything else runs the module with
the task's arguments unchanged, which then answers or fails as it does: a status the task does
not accept (a service not ready, with until retries), a redirect, a request that fails (refused,
timed out, a certificate not trusted), a ~/.netrc entry for the host, any other option (method,
body, headers, url_username without force_basic_auth, ...), check mode, a task environment,
async, an interpreter that cannot be named plainly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import shlex
from typing import Any
from urllib.parse import urljoin, urlsplit

from ansible.module_utils.common.parameters import remove_values, sanitize_keys
from ansible.module_utils.common.validation import (
    check_type_bool,
    check_type_int,
    check_type_list,
)
from ansible.module_utils.urls import basic_auth_header
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import (
    ShellFirstAction,
    python_interpreter,
)

_JUDGED = frozenset(
    {
        "url",
        "ca_path",
        "status_code",
        "return_content",
        "timeout",
        "use_proxy",
        "validate_certs",
        "method",
        "url_username",
        "url_password",
        "force_basic_auth",
    }
)
_MARK = "onprem-llm-uri"
_END = "ONPREM_LLM_URI_INPUT"
# The module's: a content type whose subtype (or +suffix) is one of these is parsed as JSON.
_JSON_CANDIDATES = frozenset({"json", "javascript"})
# The module's keys that sanitize_keys leaves as they are.
_NO_MODIFY_KEYS = frozenset(
    (
        "msg",
        "exception",
        "warnings",
        "deprecations",
        "failed",
        "skipped",
        "changed",
        "rc",
        "stdout",
        "stderr",
        "elapsed",
        "path",
        "location",
        "content_type",
    )
)
# A response header whose key would be one of the module's own keys or one Ansible reads in a
# result: the module's answer then depends on which wins, or on Ansible; it answers.
_RESERVED_KEYS = frozenset(
    {
        "body",
        "changed",
        "content",
        "cookies",
        "cookies_string",
        "deprecations",
        "diff",
        "elapsed",
        "exception",
        "failed",
        "invocation",
        "json",
        "msg",
        "path",
        "rc",
        "redirected",
        "results",
        "skip_reason",
        "skipped",
        "status",
        "stderr",
        "stderr_lines",
        "stdout",
        "stdout_lines",
        "unreachable",
        "url",
        "warnings",
    }
)
_HEADER_KEY = re.compile(r"^[a-z0-9][a-z0-9_.]*$")
_PLAIN_PATH = re.compile(r"^/[^$~\0]*$")

# Run on the host by its Python (3.6 and later), standard library only. Input on stdin, base64
# JSON: url, ca (CA file or null), proxy (use the environment's proxies, as urllib does),
# timeout, auth (the Authorization header or null), netrc (whether ~/.netrc would be read),
# read (read the body). Exits 3 where the module would take credentials from ~/.netrc; fails on
# a request that fails. Prints the mark and, base64 JSON, what the response was.
SCRIPT = r"""
import base64, datetime, gzip, http.cookiejar, json, netrc, os, ssl, sys
import urllib.error, urllib.parse, urllib.request as ur
a = json.loads(base64.b64decode(sys.stdin.read()).decode("utf-8"))
now = lambda: datetime.datetime.now(datetime.timezone.utc)
start = now()
if a["auth"] is None and a["netrc"]:
    try:
        login = netrc.netrc(os.environ.get("NETRC")).authenticators(
            urllib.parse.urlparse(a["url"]).hostname)
    except OSError:
        login = None
    if login and login[0] and login[2]:
        sys.exit(3)
class NoRedirect(ur.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
jar = http.cookiejar.CookieJar()
handlers = [ur.HTTPSHandler(context=ssl.create_default_context(cafile=a["ca"])),
            NoRedirect(), ur.HTTPCookieProcessor(jar)]
if not a["proxy"]:
    handlers.insert(0, ur.ProxyHandler({}))
request = ur.Request(a["url"], method="GET")
request.add_header("User-agent", "ansible-httpget")
if a["auth"] is not None:
    request.add_header("Authorization", a["auth"])
error = None
try:
    response = ur.build_opener(*handlers).open(request, None, a["timeout"])
except urllib.error.HTTPError as failed:
    response = error = failed
headers = response.headers
kind = headers.get_content_type()
body = None
if error is not None or a["read"] or "json" in kind or "javascript" in kind:
    body = response.read()
    if error is None and headers.get("content-encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
read = {
    "status": response.code, "url": response.geturl(),
    "error": None if error is None else str(error),
    "headers": [[name, str(value)] for name, value in headers.items()],
    "cookies": [[cookie.name, cookie.value] for cookie in jar],
    "type": kind, "charset": headers.get_param("charset"),
    "length": headers.get("Content-Length"),
    "body": None if body is None else base64.b64encode(body).decode("ascii"),
    "elapsed": (now() - start).seconds,
}
print("%s " + base64.b64encode(json.dumps(read).encode("utf-8")).decode("ascii"))
""".replace("%s", _MARK, 1)


def _strict_bool(value: Any) -> bool | None:
    try:
        return bool(check_type_bool(value))
    except TypeError:
        return None


def _strict_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(check_type_int(value))
    except TypeError:
        return None


def status_codes(value: Any) -> list[int] | None:
    """status_code as the module reads it (a list of ints, or one, or "200,503"), else None."""
    if isinstance(value, bool):
        return None
    try:
        items = check_type_list(value)
    except TypeError:
        return None
    codes = [code for code in map(_strict_int, items) if code is not None]
    return codes if len(codes) == len(items) else None


def judged_request(args: dict[str, Any]) -> dict[str, Any] | None:
    """What the host's script needs for the task, with the status codes it accepts (codes) and
    the password the module would mask (secret); None when the module must answer."""
    if set(args) - _JUDGED:
        return None
    url, ca_path = args.get("url"), args.get("ca_path")
    if not isinstance(url, str) or not url.isprintable() or " " in url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not url.startswith(parts.scheme + "://"):
        return None
    if not parts.hostname or "@" in parts.netloc:
        return None
    if ca_path is not None and not (isinstance(ca_path, str) and _PLAIN_PATH.match(ca_path)):
        return None
    method = args.get("method", "GET")
    if not isinstance(method, str) or method.upper() != "GET":
        return None
    codes = status_codes(args.get("status_code", [200]))
    timeout = _strict_int(args.get("timeout", 30))
    flags = {
        name: _strict_bool(args.get(name, default))
        for name, default in (
            ("return_content", False),
            ("use_proxy", True),
            ("validate_certs", True),
            ("force_basic_auth", False),
        )
    }
    if codes is None or timeout is None or None in flags.values() or not flags["validate_certs"]:
        return None
    username, password = args.get("url_username"), args.get("url_password")
    for value in (username, password):
        if value is not None and not isinstance(value, str):
            return None
    auth = None
    if username:
        # Without force_basic_auth the module answers a 401 challenge with urllib's handlers.
        if not flags["force_basic_auth"]:
            return None
        auth = basic_auth_header(username, password).decode("ascii")
    return {
        "codes": codes,
        "secret": password or None,
        "return_content": flags["return_content"],
        "input": {
            "url": url,
            "ca": ca_path,
            "proxy": flags["use_proxy"],
            "timeout": timeout,
            "auth": auth,
            "netrc": not username,
            "read": flags["return_content"],
        },
    }


def host_command(interpreter: str, given: dict[str, Any]) -> str:
    """The shell input that runs the script with the interpreter, its input on stdin."""
    encoded = base64.b64encode(json.dumps(given).encode("utf-8")).decode("ascii")
    return (
        f"exec {shlex.quote(interpreter)} -c {shlex.quote(SCRIPT)} <<'{_END}'\n{encoded}\n{_END}\n"
    )


def parse_read(stdout: str) -> dict[str, Any] | None:
    """What the script printed after its mark, else None."""
    for line in stdout.splitlines():
        mark, separator, encoded = line.strip().partition(" ")
        if mark == _MARK and separator:
            try:
                read = json.loads(base64.b64decode(encoded, validate=True).decode("utf-8"))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
            return read if isinstance(read, dict) else None
    return None


def _json_type(content_type: str) -> bool:
    """The module's maybe_json for a response's content type."""
    sub_type = content_type.split(",")[0].partition("/")[2]
    if "+" in sub_type:
        return sub_type.partition("+")[2].lower() in _JSON_CANDIDATES
    return sub_type.lower() in _JSON_CANDIDATES


def module_answer(request: dict[str, Any], read: dict[str, Any]) -> dict[str, Any] | None:
    """The module's answer for a response the script read, built as the module (fetch_url, then
    uri's main) builds it; None for a status the task does not accept, a redirect, or anything
    the answer could differ on."""
    url, status = request["input"]["url"], read.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or status not in request["codes"]:
        return None
    if 300 <= status < 400 or not isinstance(read.get("type"), str):
        return None
    charset = read.get("charset") or "utf-8"
    if not isinstance(charset, str):
        return None
    charset = charset.split(",")[0]
    headers = [(str(name), str(value)) for name, value in read.get("headers") or []]
    for name, _value in headers:
        key = name.replace("-", "_").lower()
        if key in _RESERVED_KEYS or not _HEADER_KEY.match(key) or key.startswith("ansible"):
            return None
    body = None if read.get("body") is None else base64.b64decode(read["body"])
    info: dict[str, Any] = {"url": url, "status": -1}
    info.update({name.lower(): value for name, value in headers})
    if read.get("error") is None:
        if read.get("url") != url:
            return None
        joined: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        info.update(joined)
        cookies = [(str(name), value) for name, value in read.get("cookies") or []]
        info["cookies_string"] = "; ".join(f"{name}={value}" for name, value in cookies)
        info["cookies"] = dict(cookies)
        length = read.get("length")
        info.update(
            msg=f"OK ({'unknown' if length is None else length} bytes)", url=url, status=status
        )
    else:
        info.update(msg=str(read["error"]), body=body, status=status)
    maybe_json = _json_type(read["type"])
    content = None
    if maybe_json or request["return_content"]:
        content = info.pop("body", b"") if read.get("error") is not None else body
        if content is None:
            return None
    elif "body" in info:
        # An error's body the module does not read again: returned as it is, its bytes as text
        # (the module's JSON decodes them as UTF-8).
        try:
            info["body"] = body.decode("utf-8") if body is not None else None
        except UnicodeDecodeError:
            return None
        if info["body"] is None:
            return None
    resp: dict[str, Any] = {"redirected": info["url"] != url}
    resp.update(info)
    resp.update(elapsed=read.get("elapsed", 0), status=int(resp["status"]), changed=False)
    answer = {key.replace("-", "_").lower(): value for key, value in resp.items()}
    if "location" in answer:
        answer["location"] = urljoin(url, answer["location"])
    text = None
    if isinstance(content, bytes):
        try:
            text = content.decode(charset)
        except (LookupError, UnicodeDecodeError):
            return None
        if maybe_json:
            with contextlib.suppress(ValueError):
                answer["json"] = json.loads(text)
    secrets = {request["secret"]} if request["secret"] else set()
    if secrets:
        answer = sanitize_keys(answer, secrets, _NO_MODIFY_KEYS)
    if request["return_content"]:
        answer["content"] = text
    return remove_values(answer, secrets) if secrets else answer


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.uri"

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._interpreter = python_interpreter(self, task_vars or {})
        return super().run(tmp, task_vars)

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        request = judged_request(args)
        interpreter = getattr(self, "_interpreter", None)
        if request is None or interpreter is None:
            return None
        if self._play_context.check_mode or self._compute_environment_string():
            return None
        # On stdin, as pipelined modules are: the Authorization header is on no command line,
        # and a command alone would get a terminal with become over ssh.
        run = self._low_level_execute_command(
            "/bin/sh",
            in_data=host_command(interpreter, request["input"]).encode("utf-8"),
            sudoable=True,
        )
        if run.get("rc") != 0:
            return None
        read = parse_read(str(run.get("stdout", "")))
        return module_answer(request, read) if read is not None else None
