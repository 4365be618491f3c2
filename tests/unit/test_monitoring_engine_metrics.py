"""Every vLLM metric the llm:* rules use exists, with the right type, in a vLLM /metrics page.

The committed page (tests/stand_ins/metrics/vllm-metrics.prom) is a recorded-format stand-in
written from vLLM's documented metric names and types. When ONPREM_LLM_VLLM_METRICS_URL names a
running vLLM's /metrics (for example the CPU build from the serving tests), the same check runs
against it.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES = REPO_ROOT / "roles" / "prometheus" / "templates" / "rules"
FIXTURE = REPO_ROOT / "tests" / "stand_ins" / "metrics" / "vllm-metrics.prom"
LIVE_URL = os.environ.get("ONPREM_LLM_VLLM_METRICS_URL", "")

# A selector in a PromQL expression: a metric name, then optionally {labels}.
SELECTOR = re.compile(r"(?<![\w:$.])(vllm:[a-zA-Z0-9_:]+|http_requests_total)\b")
HISTOGRAM_SUFFIX = "_bucket"


def metrics_used_by_rules() -> set[str]:
    text = "\n".join(path.read_text() for path in RULES.glob("*.j2"))
    exprs = "\n".join(
        line
        for line in text.splitlines()
        if not line.lstrip().startswith(("#", "summary", "- record"))
    )
    return set(SELECTOR.findall(exprs))


def parse_exposition(text: str) -> tuple[dict[str, str], set[str]]:
    """Return the declared families and their types, and the names of all samples."""
    types: dict[str, str] = {}
    samples: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return types, samples


def missing_metrics(text: str) -> list[str]:
    types, samples = parse_exposition(text)
    problems = []
    for name in sorted(metrics_used_by_rules()):
        if name.endswith(HISTOGRAM_SUFFIX):
            family = name[: -len(HISTOGRAM_SUFFIX)]
            if types.get(family) != "histogram":
                problems.append(f"{family}: not a histogram ({types.get(family)})")
            elif name not in samples:
                problems.append(f"{name}: no bucket samples")
        elif name.endswith("_total"):
            if types.get(name, types.get(name[: -len("_total")])) != "counter":
                problems.append(f"{name}: not a counter")
            elif name not in samples:
                problems.append(f"{name}: no samples")
        elif name not in samples or types.get(name) != "gauge":
            problems.append(f"{name}: not a gauge with samples")
    return problems


def test_rules_use_the_engine_metrics_this_test_knows():
    used = metrics_used_by_rules()
    for name in (
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:generation_tokens_total",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:time_to_first_token_seconds_bucket",
        "http_requests_total",
    ):
        assert name in used


def test_recorded_vllm_metrics_carry_every_metric_the_rules_use():
    problems = missing_metrics(FIXTURE.read_text())
    # vllm:gpu_cache_usage_perc is the older vLLM name of the KV cache gauge, used as a fallback.
    assert problems == ["vllm:gpu_cache_usage_perc: not a gauge with samples"]


def test_the_check_finds_a_missing_metric():
    text = FIXTURE.read_text()
    without_queue = "\n".join(
        line for line in text.splitlines() if "vllm:num_requests_waiting" not in line
    )
    assert "vllm:num_requests_waiting: not a gauge with samples" in missing_metrics(without_queue)


@pytest.mark.skipif(not LIVE_URL, reason="ONPREM_LLM_VLLM_METRICS_URL is not set")
def test_live_vllm_metrics_carry_every_metric_the_rules_use():
    with urllib.request.urlopen(LIVE_URL, timeout=10) as response:
        text = response.read().decode()
    problems = [p for p in missing_metrics(text) if not p.startswith("vllm:gpu_cache_usage_perc")]
    assert not problems, problems
