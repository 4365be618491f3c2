"""onprem.llm.deb822_repository and onprem.llm.get_url run by ansible-playbook on localhost.

Where the action must answer without the module, the module is replaced by one that fails (a
module of that name in the play's library path, which ansible.legacy.NAME resolves to first): a
run that passes made no module call, and a case the action must leave to the module fails with
"the NAME module was called".

get_url's answers are compared with the builtin module's for the same task, key by key. The
builtin deb822_repository needs python-debian, which this interpreter may not have: its answers
are compared with the answer and file the module gives (recorded below from ansible-core 2.19
with python-debian 1.1.1), and with the module itself where python-debian is installed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action import deb822_repository, get_url

from tests.unit.conftest import run_local_play

# The module's own diagnostics: the arguments it was called with.
_MODULE_ONLY = {"invocation"}
HAS_PYTHON_DEBIAN = importlib.util.find_spec("debian") is not None
URI = "https://onprem-llm-test.invalid/repo/"

# The file ansible.builtin.deb822_repository writes for the roles' two kinds of repository.
FLAT_SOURCES = "X-Repolib-Name: {name}\nSigned-By: {key}\nSuites: /\nTypes: deb\nURIs: {uri}\n"
RELEASE_SOURCES = (
    "Architectures: amd64\nComponents: stable main\nX-Repolib-Name: {name}\nSigned-By: {key}\n"
    "Suites: bookworm\nTypes: deb\nURIs: {uri}\n"
)


def registered(tmp_path: Path, task: dict[str, Any], *args: str, failing: tuple[str, ...] = ()):
    """The task's registered result, as JSON, after the play; the play's process."""
    out = tmp_path / "registered.json"
    out.unlink(missing_ok=True)
    tasks = [
        {**task, "register": "answer"},
        {
            "ansible.builtin.copy": {"content": "{{ answer | to_json }}", "dest": str(out)},
            "check_mode": False,
        },
    ]
    result = run_local_play(tmp_path, tasks, *args, failing_modules=failing)
    answer = json.loads(out.read_text()) if result.returncode == 0 else None
    return answer, result


def without_module_only(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in _MODULE_ONLY}


def module_called(run: Any, name: str) -> bool:
    return f"the {name} module was called" in run.stdout


# deb822_repository


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A repository name of this test alone, its key file and sources path; the sources file
    (and any key file the module made) is removed at the end."""
    slug = f"onprem-llm-test-{secrets.token_hex(4)}"
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    sources = Path(deb822_repository.SOURCES_DIR) / f"{slug}.sources"
    try:
        yield {"name": f"Onprem LLM_test {slug[16:]}", "key": str(key), "sources": sources}
    finally:
        sources.unlink(missing_ok=True)
        for extension in ("asc", "gpg"):
            Path(f"/etc/apt/keyrings/{slug}.{extension}").unlink(missing_ok=True)


def flat_arguments(repository: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": repository["name"],
        "types": ["deb"],
        "uris": [URI],
        "suites": ["/"],
        "signed_by": repository["key"],
        "state": "present",
    }


def release_arguments(repository: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": repository["name"],
        "types": ["deb"],
        "uris": [URI],
        "suites": ["bookworm"],
        "components": ["stable", "main"],
        "architectures": ["amd64"],
        "signed_by": repository["key"],
        "state": "present",
    }


def write_sources(repository: dict[str, Any], template: str, mode: int = 0o644) -> str:
    content = template.format(name=repository["name"], key=repository["key"], uri=URI)
    repository["sources"].write_text(content)
    repository["sources"].chmod(mode)
    return content


@pytest.mark.parametrize(
    ("shape", "play_arguments"),
    [("flat", []), ("release", []), ("flat", ["--check"])],
    ids=["flat", "release", "check-mode"],
)
def test_deb822_answers_as_the_module_without_it(
    tmp_path: Path, repository: dict[str, Any], shape: str, play_arguments: list[str]
) -> None:
    arguments = (flat_arguments if shape == "flat" else release_arguments)(repository)
    template = FLAT_SOURCES if shape == "flat" else RELEASE_SOURCES
    content = write_sources(repository, template)
    expected = {
        "changed": False,
        "failed": False,
        "repo": content,
        "dest": str(repository["sources"]),
        "key_filename": repository["key"],
        "uid": os.geteuid(),
        "gid": os.getegid(),
        "owner": "root",
        "group": "root",
        "mode": "0644",
        "state": "file",
        "size": len(content.encode()),
    }
    if HAS_PYTHON_DEBIAN:
        repository["sources"].unlink()
        builtin, run = registered(tmp_path, {"ansible.builtin.deb822_repository": arguments})
        assert builtin is not None and builtin["changed"], run.stdout + run.stderr
        assert repository["sources"].read_text() == content
        builtin, run = registered(tmp_path, {"ansible.builtin.deb822_repository": arguments})
        assert builtin is not None, run.stdout + run.stderr
        assert without_module_only(builtin) == expected
    ours, run = registered(
        tmp_path,
        {"onprem.llm.deb822_repository": arguments},
        *play_arguments,
        failing=("deb822_repository",),
    )
    assert ours is not None, run.stdout + run.stderr
    assert ours == expected


@pytest.mark.parametrize(
    "drift",
    [
        "missing",
        "content",
        "mode",
        "owner",
        "link",
        "no-key-file",
        "key-url",
        "other-option",
        "absent",
        "components-as-string",
    ],
)
def test_deb822_leaves_anything_else_to_the_module(
    tmp_path: Path, repository: dict[str, Any], drift: str
) -> None:
    arguments = release_arguments(repository)
    write_sources(repository, RELEASE_SOURCES)
    if drift == "missing":
        repository["sources"].unlink()
    elif drift == "content":
        write_sources(repository, RELEASE_SOURCES + "Enabled: yes\n")
    elif drift == "mode":
        repository["sources"].chmod(0o600)
    elif drift == "owner":
        os.chown(repository["sources"], 65534, 65534)
    elif drift == "link":
        target = tmp_path / "target.sources"
        shutil.move(repository["sources"], target)
        repository["sources"].symlink_to(target)
    elif drift == "no-key-file":
        Path(repository["key"]).unlink()
    elif drift == "key-url":
        arguments["signed_by"] = "https://onprem-llm-test.invalid/key.asc"
    elif drift == "other-option":
        arguments["enabled"] = True
    elif drift == "absent":
        arguments["state"] = "absent"
    else:
        arguments["components"] = "stable,main"
    task = {"onprem.llm.deb822_repository": arguments}
    answer, run = registered(tmp_path, task, failing=("deb822_repository",))
    assert answer is None
    assert module_called(run, "deb822_repository"), run.stdout


def test_deb822_parts() -> None:
    assert deb822_repository.sources_slug("Onprem LLM_test  probe.2") == "onprem-llm-test-probe2"
    values = deb822_repository.judged_values({"name": "cuda", "uris": ["u"], "suites": ["/"]})
    assert values == {"name": "cuda", "types": "deb", "uris": "u", "suites": "/"}
    assert deb822_repository.render_sources(values) == (
        "X-Repolib-Name: cuda\nSuites: /\nTypes: deb\nURIs: u\n"
    )
    rejected = [
        {"name": "cuda", "types": ["rpm"]},
        {"name": "cuda", "suites": []},
        {"name": "cuda", "suites": "/"},
        {"name": "cuda", "suites": ["a\nb"]},
        {"name": "cuda", "mode": "0644"},
        {"name": "cuda", "signed_by": "key.asc"},
        {"name": "..."},
        {"suites": ["/"]},
    ]
    for arguments in rejected:
        assert deb822_repository.judged_values(arguments) is None, arguments
    command = deb822_repository.read_command("/etc/apt/sources.list.d/a.sources", "/k b")
    assert "[ -f '/k b' ] && id -u && base64 < /etc/apt/sources.list.d/a.sources" in command
    # A become terminal ends the lines with \r\n.
    encoded = base64.b64encode(deb822_repository.render_sources(values).encode()).decode()
    stdout = (
        "onprem-llm-stat file 644 0 0 50 root root\r\n1\r\n0\r\n"
        f"{encoded[:20]}\r\n{encoded[20:]}\r\n"
    )
    unchanged = deb822_repository.unchanged_answer
    answer = unchanged("/s", values, stdout)
    assert answer is not None and answer["repo"] == deb822_repository.render_sources(values)
    assert answer["key_filename"] is None and answer["mode"] == "0644" and answer["size"] == 50
    assert unchanged("/s", values, stdout.replace("\n1\r", "\n2\r")) == {**answer, "state": "hard"}
    assert unchanged("/s", values, stdout.replace("644", "640")) is None
    assert unchanged("/s", values, stdout.replace("\n0\r", "\n9\r")) is None
    assert unchanged("/s", values, stdout.replace(encoded[:20], encoded[:19])) is None
    assert unchanged("/s", values, "onprem-llm-stat missing\n") is None


# get_url


@pytest.fixture
def download(tmp_path: Path) -> dict[str, Any]:
    """A source file (its file:// URL) and a copy of it at dest, mode 0644."""
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 40 + b"end\n")
    dest = tmp_path / "dest.bin"
    shutil.copyfile(source, dest)
    dest.chmod(0o644)
    return {"source": source, "dest": dest, "url": f"file://{source}"}


def url_arguments(download: dict[str, Any], algorithm: str = "sha256", **more: Any):
    digest = hashlib.new(algorithm, download["source"].read_bytes()).hexdigest()
    return {
        "url": download["url"],
        "dest": str(download["dest"]),
        "checksum": f"{algorithm}:{digest}",
        "owner": "root",
        "group": "root",
        "mode": "0644",
        **more,
    }


@pytest.mark.parametrize(
    ("algorithm", "force", "change"),
    [
        ("sha256", False, ""),
        ("sha256", True, ""),
        ("sha1", True, ""),
        ("md5", False, ""),
        ("sha224", False, ""),
        ("sha384", True, ""),
        ("sha512", False, ""),
        ("sha256", True, "upper-case"),
        ("sha256", False, "hard-link"),
        ("sha256", True, "password-in-url"),
        ("sha256", True, "symbolic-mode"),
        ("sha256", False, "check-mode"),
    ],
    ids=str,
)
def test_get_url_answers_as_the_module_without_it(
    tmp_path: Path, download: dict[str, Any], algorithm: str, force: bool, change: str
) -> None:
    arguments = url_arguments(download, algorithm, timeout=30)
    play_arguments = ["--check"] if change == "check-mode" else []
    if change == "upper-case":
        arguments["checksum"] = arguments["checksum"].upper().replace("SHA256:", "sha256:")
    elif change == "hard-link":
        os.link(download["dest"], tmp_path / "other-name.bin")
    elif change == "password-in-url":
        arguments["url"] = "https://user:secret@onprem-llm-test.invalid/key.asc"
    elif change == "symbolic-mode":
        arguments["mode"] = "u=rw,go=r"
    # The builtin's answer for a file whose checksum matches, without force (with force it
    # downloads again, to the same bytes).
    builtin, run = registered(tmp_path, {"ansible.builtin.get_url": arguments}, *play_arguments)
    assert builtin is not None, run.stdout + run.stderr
    assert builtin["msg"] == "file already exists"
    ours, run = registered(
        tmp_path,
        {"onprem.llm.get_url": {**arguments, "force": force}},
        *play_arguments,
        failing=("get_url",),
    )
    assert ours is not None, run.stdout + run.stderr
    assert ours == without_module_only(builtin)


@pytest.mark.parametrize(
    "drift",
    [
        "no-checksum",
        "missing",
        "content",
        "mode",
        "owner",
        "link",
        "directory",
        "headers",
        "checksum-url",
        "short-checksum",
        "unknown-algorithm",
        "dest-variable",
    ],
)
def test_get_url_leaves_anything_else_to_the_module(
    tmp_path: Path, download: dict[str, Any], drift: str
) -> None:
    arguments = url_arguments(download, force=True)
    if drift == "no-checksum":
        del arguments["checksum"]
    elif drift == "missing":
        download["dest"].unlink()
    elif drift == "content":
        download["dest"].write_bytes(b"other\n")
    elif drift == "mode":
        download["dest"].chmod(0o600)
    elif drift == "owner":
        os.chown(download["dest"], 65534, 65534)
    elif drift == "link":
        download["dest"].unlink()
        download["dest"].symlink_to(download["source"])
    elif drift == "directory":
        arguments["dest"] = str(tmp_path)
    elif drift == "headers":
        arguments["headers"] = {"Accept": "application/octet-stream"}
    elif drift == "checksum-url":
        sums = tmp_path / "SHA256SUMS"
        digest = arguments["checksum"].partition(":")[2]
        sums.write_text(f"{digest}  source.bin\n")
        arguments["checksum"] = f"sha256:file://{sums}"
    elif drift == "short-checksum":
        arguments["checksum"] = arguments["checksum"][:-1]
    elif drift == "unknown-algorithm":
        arguments["checksum"] = arguments["checksum"].replace("sha256:", "blake2b:")
    else:
        arguments["dest"] = f"{tmp_path}/$ONPREM_LLM_NOTHING/dest.bin"
    task = {"onprem.llm.get_url": arguments}
    answer, run = registered(tmp_path, task, failing=("get_url",))
    assert answer is None
    assert module_called(run, "get_url"), run.stdout


def test_get_url_a_changed_file_is_downloaded_by_the_module(
    tmp_path: Path, download: dict[str, Any]
) -> None:
    download["dest"].write_bytes(b"other\n")
    arguments = url_arguments(download, force=True)
    answer, run = registered(tmp_path, {"onprem.llm.get_url": arguments})
    assert answer is not None and answer["changed"], run.stdout + run.stderr
    assert download["dest"].read_bytes() == download["source"].read_bytes()


def test_get_url_parts() -> None:
    arguments = {"url": "u", "dest": "/d", "checksum": "sha1:" + "A" * 40, "force": "yes"}
    assert get_url.judged_checksum(arguments) == ("sha1", "a" * 40)
    rejected = [
        {**arguments, "checksum": "sha1:" + "a" * 39},
        {**arguments, "checksum": "sha1:https://example.com/SHA1SUMS"},
        {**arguments, "checksum": ""},
        {**arguments, "dest": "d"},
        {**arguments, "force": "maybe"},
        {**arguments, "timeout": "soon"},
        {**arguments, "backup": True},
        {"url": "u", "dest": "/d"},
    ]
    for case in rejected:
        assert get_url.judged_checksum(case) is None, case
    assert "sha512sum < '/a b'" in get_url.read_command("/a b", "sha512")
    stdout = "onprem-llm-stat file 644 0 0 4 root root\r\n1\r\n" + "a" * 40 + "  -\r\n"
    answer = get_url.unchanged_answer({**arguments, "owner": "0"}, "a" * 40, stdout)
    assert answer is not None and answer["msg"] == "file already exists"
    assert get_url.unchanged_answer({**arguments, "mode": "0600"}, "a" * 40, stdout) is None
    assert get_url.unchanged_answer(arguments, "b" * 40, stdout) is None
