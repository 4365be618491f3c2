"""Prometheus metrics of the gateway, in a registry of their own (no process collectors twice).

Label values are bounded: the tenant comes from HAProxy's trusted header, the model from the
request body only when it is configured or the engine accepted it (else "other"), the cache
outcome and token type from fixed sets.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Cache outcomes of a request (the `cache` label).
HIT = "hit"
MISS = "miss"
BYPASS = "bypass"
ERROR = "error"

REQUEST_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
LOOKUP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
EMBEDDING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0)
SIMILARITY_BUCKETS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0)

__all__ = ["BYPASS", "CONTENT_TYPE", "ERROR", "HIT", "MISS", "GatewayMetrics"]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=registry)
        self.registry = registry
        self.requests = Counter(
            "onprem_llm_gateway_requests_total",
            "Requests answered, by tenant, model and cache outcome (hit, miss, bypass, error).",
            ("tenant", "model", "cache"),
            registry=registry,
        )
        self.tokens = Counter(
            "onprem_llm_gateway_tokens_total",
            "Tokens in the answers clients got, from the engine's usage or the cached usage.",
            ("tenant", "model", "type", "source"),
            registry=registry,
        )
        self.routes = Counter(
            "onprem_llm_gateway_routed_requests_total",
            "Requests by tenant, model and where they were answered: the route HAProxy chose "
            "(on-prem, cloud:<provider>) or cache.",
            ("tenant", "model", "route"),
            registry=registry,
        )
        self.cache_errors = Counter(
            "onprem_llm_gateway_cache_errors_total",
            "Failed cache operations (lookup, store, lease, decode); requests still answered.",
            ("operation",),
            registry=registry,
        )
        self.upstream_responses = Counter(
            "onprem_llm_gateway_upstream_responses_total",
            "Responses from the engines' frontend by HTTP status ('error': none received).",
            ("status",),
            registry=registry,
        )
        self.request_duration = Histogram(
            "onprem_llm_gateway_request_duration_seconds",
            "Time from request to the end of the answer, by cache outcome.",
            ("cache",),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.lookup_duration = Histogram(
            "onprem_llm_gateway_cache_lookup_duration_seconds",
            "Time of cache lookups, including abandoned ones.",
            buckets=LOOKUP_BUCKETS,
            registry=registry,
        )
        self.semantic_lookups = Counter(
            "onprem_llm_gateway_semantic_lookups_total",
            "Semantic cache lookups by tenant, model and result: hit, or the miss reason "
            "(threshold, guard, timeout, embedding, dimension, empty, stale, unavailable, "
            "ineligible).",
            ("tenant", "model", "result"),
            registry=registry,
        )
        self.semantic_embedding_duration = Histogram(
            "onprem_llm_gateway_semantic_embedding_duration_seconds",
            "Time of the embedding calls of semantic lookups, including abandoned ones.",
            buckets=EMBEDDING_BUCKETS,
            registry=registry,
        )
        self.semantic_similarity = Histogram(
            "onprem_llm_gateway_semantic_similarity",
            "Cosine similarity of the closest stored question found by each semantic lookup.",
            buckets=SIMILARITY_BUCKETS,
            registry=registry,
        )
        for operation in ("lookup", "store", "lease", "decode", "semantic"):
            self.cache_errors.labels(operation)
        for outcome in (HIT, MISS, BYPASS, ERROR):
            self.request_duration.labels(outcome)

    def count_tokens(self, tenant: str, model: str, usage: Any, source: str) -> None:
        if not isinstance(usage, dict):
            return
        for kind in ("prompt", "completion"):
            value = usage.get(f"{kind}_tokens")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                self.tokens.labels(tenant, model, kind, source).inc(value)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
