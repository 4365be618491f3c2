"""Model staging (roles/engine/tasks/model.yml) run by ansible-playbook on this machine: a model
copied from a controller directory, one downloaded as an archive and one fetched file by file
from a mirror (a local HTTP server). A re-run reads one recorded line per model, copies and
downloads nothing and restarts nothing; a changed source is staged again; files changed on the
host are repaired only with engine_model_verify_files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = ".onprem-llm-source.sha256"
STAGING_TASKS = {
    "Copy the model from the controller",
    "Download and unpack the model archive",
    "Download the model archive",
    "Download the model files from the mirror",
    "Record what the model was staged from",
}


class _Mirror(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTP server of a directory: its base URL, the directory, and the paths requested."""
    root = tmp_path / "mirror"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_Mirror,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, requests
    finally:
        server.shutdown()
        server.server_close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stage(tmp_path: Path, store: Path, models: list[dict], verify: bool | str = False) -> dict:
    """Run model.yml once; the JSON report's task names that changed and whether the engines'
    restart was notified."""
    play = [
        {
            "name": "Stage the models",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [
                str(REPO_ROOT / "roles/engine/defaults/main.yml"),
                str(REPO_ROOT / "roles/engine/vars/main.yml"),
            ],
            "handlers": [
                {
                    "name": "Restart every engine instance",
                    "ansible.builtin.set_fact": {"restart_notified": True},
                }
            ],
            "tasks": [
                {"ansible.builtin.include_tasks": str(REPO_ROOT / "roles/engine/tasks/model.yml")},
                {"ansible.builtin.meta": "flush_handlers"},
                {
                    "name": "Report",
                    "ansible.builtin.debug": {"msg": "{{ restart_notified | default(false) }}"},
                },
            ],
        }
    ]
    playbook = tmp_path / "stage.yml"
    playbook.write_text(yaml.safe_dump(play))
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps(
            {
                "engine_model_store_path": str(store),
                "engine_model_verify_files": verify,
                "engine_instances": [
                    {"name": f"i{n}", "model_dir_name": m["dir"], "model_source": m["source"]}
                    for n, m in enumerate(models)
                ],
                "ansible_python_interpreter": sys.executable,
            }
        )
    )
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"@{extra}", str(playbook)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        },
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])[0]
    # (name, result) per task run: stage_model.yml's tasks once per model staged
    results = [
        (task["task"]["name"], task["hosts"]["localhost"])
        for task in report["plays"][0]["tasks"]
        if "localhost" in task["hosts"]
    ]
    return {
        "ran": {name for name, result in results if not result.get("skipped")},
        "changed": {name for name, result in results if result.get("changed")},
        "restart": dict(results)["Report"]["msg"] in (True, "True"),
        "stats": report["stats"]["localhost"],
    }


@pytest.fixture
def sources(tmp_path: Path, mirror: tuple[str, Path, list[str]]) -> dict[str, Any]:
    base_url, root, requests = mirror
    copied = tmp_path / "controller-model"
    (copied / "tokenizer").mkdir(parents=True)
    (copied / "config.json").write_text('{"model_type": "llama"}\n')
    (copied / "model.safetensors").write_bytes(os.urandom(4096))
    (copied / "tokenizer" / "tokenizer.json").write_text("{}\n")

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in {"config.json": b"{}\n", "weights.bin": os.urandom(2048)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "model.tar.gz").write_bytes(archive.getvalue())

    (root / "files").mkdir()
    mirrored = {"config.json": b'{"a": 1}\n', "weights.bin": os.urandom(1024)}
    for name, data in mirrored.items():
        (root / "files" / name).write_bytes(data)
    models = [
        {"dir": "copied", "source": {"type": "path", "path": str(copied)}},
        {
            "dir": "unpacked",
            "source": {
                "type": "url",
                "url": f"{base_url}/model.tar.gz",
                "sha256": _sha256(archive.getvalue()),
            },
        },
        {
            "dir": "mirrored",
            "source": {
                "type": "mirror",
                "url": f"{base_url}/files",
                "files": [{"name": n, "sha256": _sha256(d)} for n, d in mirrored.items()],
            },
        },
        {"dir": "already-there", "source": {"type": "none"}},
    ]
    return {"models": models, "controller": copied, "mirror": root, "requests": requests}


def test_a_rerun_reads_one_line_per_model_and_stages_only_what_changed(
    tmp_path: Path, sources: dict[str, Any]
) -> None:
    store = tmp_path / "store"
    models, requests = sources["models"], sources["requests"]

    first = _stage(tmp_path, store, models)
    assert first["restart"], first
    assert {"Copy the model from the controller", "Record what the model was staged from"} <= (
        first["changed"]
    )
    assert (store / "copied/tokenizer/tokenizer.json").read_text() == "{}\n"
    assert (store / "unpacked/weights.bin").stat().st_size == 2048
    assert (store / "mirrored/config.json").read_bytes() == b'{"a": 1}\n'
    assert sorted(requests) == ["/files/config.json", "/files/weights.bin", "/model.tar.gz"]
    for model in models[:3]:
        assert (store / model["dir"] / MARKER).read_text().strip(), model
    assert (store / "unpacked" / MARKER).read_text() == models[1]["source"]["sha256"] + "\n"
    assert not (store / "already-there").exists()

    # No-op: no staging task runs at all, nothing is fetched, no restart.
    requests.clear()
    second = _stage(tmp_path, store, models)
    assert second["stats"]["changed"] == 0, second
    assert not second["ran"] & STAGING_TASKS, second["ran"]
    assert not second["restart"]
    assert requests == []

    # A changed controller file: that model only is copied again, and the engines restart.
    (sources["controller"] / "config.json").write_text('{"model_type": "mistral"}\n')
    third = _stage(tmp_path, store, models)
    assert third["restart"]
    assert "Copy the model from the controller" in third["changed"]
    assert requests == []
    assert "mistral" in (store / "copied/config.json").read_text()

    # A new file list on the mirror: fetched again.
    (sources["mirror"] / "files/config.json").write_bytes(b'{"a": 2}\n')
    models[2]["source"]["files"][0]["sha256"] = _sha256(b'{"a": 2}\n')
    fourth = _stage(tmp_path, store, models)
    assert fourth["restart"]
    assert requests == ["/files/config.json"]
    assert (store / "mirrored/config.json").read_bytes() == b'{"a": 2}\n'


def test_files_changed_on_the_host_are_repaired_only_by_a_verifying_run(
    tmp_path: Path, sources: dict[str, Any]
) -> None:
    store = tmp_path / "store"
    models, requests = sources["models"], sources["requests"]
    _stage(tmp_path, store, models)
    (store / "copied/model.safetensors").write_bytes(b"damaged")
    (store / "mirrored/weights.bin").write_bytes(b"damaged")
    (store / "unpacked/weights.bin").write_bytes(b"damaged")
    requests.clear()

    # As "-e engine_model_verify_files=false" gives it: a string.
    unverified = _stage(tmp_path, store, models, verify="false")
    assert unverified["stats"]["changed"] == 0
    assert (store / "copied/model.safetensors").read_bytes() == b"damaged"

    verified = _stage(tmp_path, store, models, verify=True)
    assert verified["restart"]
    assert (store / "copied/model.safetensors").read_bytes() == (
        sources["controller"] / "model.safetensors"
    ).read_bytes()
    assert (store / "mirrored/weights.bin").read_bytes() == (
        sources["mirror"] / "files/weights.bin"
    ).read_bytes()
    assert requests == ["/files/weights.bin"]
    # An archive is compared by its sha256 only: no download without a new one.
    assert (store / "unpacked/weights.bin").read_bytes() == b"damaged"
    assert _stage(tmp_path, store, models, verify=True)["stats"]["changed"] == 0
