"""Every vLLM metric the llm:* rules use exists, with the right type, in a vLLM /metrics page.

The committed page (tests/stand_ins/metrics/vllm-metrics.prom) is a recorded-format stand-in
written from vLLM's documented metric names and types; the serving scenario runs the same check
against its real vLLM (molecule/serving/tests/test_serving.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "stand_ins" / "metrics" / "vllm-metrics.prom"
_spec = importlib.util.spec_from_file_location(
    "engine_metrics", REPO_ROOT / "tests" / "harness" / "engine_metrics.py"
)
assert _spec and _spec.loader
engine_metrics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_metrics)
metrics_used_by_rules = engine_metrics.metrics_used_by_rules
missing_metrics = engine_metrics.missing_metrics


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
