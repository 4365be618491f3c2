"""`onprem-llm plan` on the command line: bad flags name the flag, no input gives a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from onprem_llm.cli import main
from onprem_llm.results import ExitCode

BASE = ["plan", "--model", "llama-3.1-8b", "--requests-per-month", "1000"]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err):  # argparse writes usage errors to sys.stderr
            code = main(list(args), out=out, err=err)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--requests-per-month", "nan"], "argument --requests-per-month: expected a finite"),
        (["--requests-per-month", "1e30"], "argument --requests-per-month: must be at most 1e+10"),
        (["--requests-per-month", "-5"], "argument --requests-per-month: must be 0 or more"),
        (["--utilisation", "0"], "argument --utilisation: must be above 0 and at most 1, got 0"),
        (["--utilisation", "1.5"], "argument --utilisation: must be above 0 and at most 1"),
        (["--context", "0"], "argument --context: must be greater than 0, got 0"),
        (["--peak-to-average", "inf"], "argument --peak-to-average: expected a finite number"),
        (["--prompt-tokens", "1.5"], "argument --prompt-tokens: expected a whole number"),
        (["--api-output-price", "-1"], "argument --api-output-price: must be 0 or more"),
        (["--pue", "0.5"], "argument --pue: must be 1 or more, got 0.5"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(args: list[str], message: str) -> None:
    code, out, err = run(*BASE, *args)
    assert code == ExitCode.USAGE
    assert out == ""
    assert message in err


def test_unknown_weight_format_names_the_flag() -> None:
    code, out, err = run(*BASE, "--dtype", "fp3")
    assert code == ExitCode.USAGE
    assert out == ""
    assert "--dtype: unknown format 'fp3'" in err


def test_plan_needs_a_model_size() -> None:
    code, out, err = run("plan", "--requests-per-month", "1")
    assert code == ExitCode.USAGE
    assert out == ""
    assert "--params-b: give --params-b or --model" in err


def test_conflict_names_the_flag_the_user_gave() -> None:
    code, _unused, err = run(*BASE, "--api-input-price", "2", "--api-cost-per-request", "0.01")
    assert code == ExitCode.USAGE
    assert "--api-input-price: give per-token prices or --api-cost-per-request" in err


def test_request_longer_than_the_context() -> None:
    code, _unused, err = run(*BASE, "--context", "1024")
    assert code == ExitCode.USAGE
    assert "--context: a request of 1,000 + 500 tokens does not fit" in err


def test_nothing_fits_is_an_error_with_the_reasons() -> None:
    code, out, err = run(
        "plan", "--params-b", "9000", "--kv-bytes-per-token", "1000", "--requests-per-month", "1e6"
    )
    assert code == ExitCode.ERROR
    assert out == ""
    assert "no fit:" in err and "8x H100 HGX:" in err and "below break-even" not in err


def test_guide_example_json_and_chart(tmp_path: Path) -> None:
    chart = tmp_path / "guide.png"
    code, out, _unused = run(
        "plan", "--model", "llama-3.1-70b", "--requests-per-month", "10000000",
        "--api-cost-per-request", "0.01", "--json", "--chart", str(chart),
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    assert document["cost"]["api"]["monthly"] == 100_000.0
    assert document["break_even_curve"]["break_even_requests_per_month"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_guide_example_on_h200_as_json() -> None:
    """The design guide's example: 10M requests a month at $0.01 each, costed on H200."""
    code, out, _unused = run(
        "plan", "--model", "llama-3.1-70b", "--requests-per-month", "10000000",
        "--api-cost-per-request", "0.01", "--platform", "h200_hgx", "--json",
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    assert document["cost"]["api"]["monthly"] == 100_000.0
    assert document["cost"]["onprem"]["monthly"] == 21_809.67
    assert document["cost"]["break_even"] == {
        "requests_per_month": 2_180_967,
        "months": 3.47,
        "monthly_saving": 78_190.33,
    }
    sizing = {s["platform"]: s for s in document["sizing"]}
    assert list(sizing) == ["h200_hgx", "gb200_nvl72", "h100_hgx", "b200_hgx"]
    assert all(s["fits"] for s in sizing.values())
    h200 = sizing["h200_hgx"]
    assert (h200["tensor_parallel_size"], h200["instances"], h200["systems"]) == (2, 3, 1)
    assert document["break_even_curve"]["break_even_requests_per_month"] == [2_180_967]
    assert document["recommendation"]["choice"] == "on-prem"


def test_table_for_maverick_fp8() -> None:
    code, out, err = run(
        "plan", "--model", "llama-4-maverick", "--dtype", "fp8", "--requests-per-month", "5e6"
    )
    assert code == 0, err
    assert out.startswith("Model:   llama-4-maverick, 400B parameters (17B active) in fp8")
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    for label in ("8x H200 HGX", "GB200 NVL72", "8x H100 HGX", "8x B200 HGX"):
        assert rows[label].split()[len(label.split())] == "yes"
    assert "Cost on 8x H100 HGX (1 HGX server, 1 nodes, 8 GPUs)" in out
    assert "This fleet breaks even at 3,213,991 requests/month" in out
    assert "Break-even on the curve (fleet resized per volume): 3,213,991" in out
    assert "Recommendation: on-prem" in out


def _flag_values() -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.sampled_from([0, 1, 2, 1e-300, 1e300, 0.5, 7, 4096, 1e10]),
    )
    return numbers.map(lambda value: repr(value) if isinstance(value, float) else str(value))


NUMERIC_FLAGS = [
    "--params-b", "--active-params-b", "--layers", "--hidden-size", "--attention-heads",
    "--kv-heads", "--context", "--kv-bytes-per-token", "--kv-cache-headroom",
    "--gpu-memory-utilization", "--requests-per-month", "--concurrency", "--peak-to-average",
    "--prompt-tokens", "--completion-tokens", "--ttft-slo", "--tokens-per-second-slo",
    "--max-num-seqs", "--min-instances", "--api-input-price", "--api-output-price",
    "--api-cost-per-request", "--amortisation-months", "--electricity-per-kwh", "--pue",
    "--utilisation", "--idle-power-fraction", "--cooling-per-month", "--staff-per-month",
    "--nodes-per-engineer", "--min-engineers", "--support-fraction-per-year",
    "--colocation-per-kw-month", "--network-per-node-month", "--other-opex-per-month",
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["llama-3.1-8b", "llama-4-scout", "deepseek-r1", "llama-3.1-405b"]),
    dtype=st.sampled_from(["bf16", "fp8", "fp4", "int4"]),
    flags=st.dictionaries(st.sampled_from(NUMERIC_FLAGS), _flag_values(), max_size=4),
    as_json=st.booleans(),
)
# Found by this test: a fraction of one request a month made the cost per request infinite.
@example(
    model="llama-3.1-8b",
    dtype="bf16",
    flags={"--requests-per-month": "1.1154504151237236e-305"},
    as_json=True,
)
# Found by this test: a denormal KV cache per token overflowed the requests a cache holds.
@example(
    model="llama-3.1-8b",
    dtype="bf16",
    flags={"--kv-bytes-per-token": "2.225073858507e-311"},
    as_json=False,
)
def test_no_input_gives_a_traceback(
    model: str, dtype: str, flags: dict[str, str], as_json: bool
) -> None:
    args = ["plan", "--model", model, "--dtype", dtype, "--requests-per-month", "5e6"]
    for flag, value in flags.items():
        args += [f"{flag}={value}"]
    if as_json:
        args.append("--json")
    code, out, err = run(*args)
    assert code in (ExitCode.OK, ExitCode.USAGE, ExitCode.ERROR), err
    assert "Traceback" not in err
    if code == ExitCode.OK and as_json:
        document = json.loads(out)  # strict JSON: no NaN or Infinity
        for sizing in document["sizing"]:
            assert sizing["systems"] < 10**6
    elif code != ExitCode.OK:
        assert out == "" and err.startswith(("onprem-llm plan", "usage:"))
        assert not math.isnan(code)
