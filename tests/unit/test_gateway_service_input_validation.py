"""Bad gateway service input fails in the validation play before any host changes, naming the
variable; the Redis password never appears in the output.

One run validates many gateways, each with one bad setting, as an operator's inventory with
several mistakes is reported in one pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_site import REDIS_CACHE_PASSWORD, gateway_site, make_wheel

PASSWORD = REDIS_CACHE_PASSWORD
PSEUDONYM_KEY = "pseudonymisation-key-0123456789abcdef"


@pytest.fixture
def wheel(tmp_path: Path) -> str:
    return make_wheel(tmp_path)


def inventory(gateways: dict[str, dict], group_vars: dict, redis_hosts=("redis-1",)) -> dict:
    return gateway_site(gateways, group_vars, tuple(redis_hosts))


def good_vars(wheel: str) -> dict:
    return {"gateway_service_enabled": True, "gateway_service_wheel": wheel}


def test_good_input_passes(validate_input, wheel):
    result = validate_input(inventory({"gateway-1": {}}, good_vars(wheel)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_disabled_service_needs_nothing(validate_input):
    result = validate_input(inventory({"gateway-1": {}}, {}, redis_hosts=()))
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "no wheel": ({"gateway_service_wheel": ""}, ["gateway_service_wheel is empty"]),
    "wheel missing": (
        {"gateway_service_wheel": "/nonexistent/onprem_llm-0.1.0-py3-none-any.whl"},
        ["gateway_service_wheel: /nonexistent/onprem_llm-0.1.0-py3-none-any.whl is not a wheel"],
    ),
    "bad wheel sha256": (
        {"gateway_service_wheel_sha256": "abc"},
        ["gateway_service_wheel_sha256 must be 64 hex digits"],
    ),
    "password missing": (
        {"gateway_service_redis_password": ""},
        ["gateway_service_redis_password is empty: put redis_cache_password in the vault"],
    ),
    "negative ttl": (
        {"gateway_service_cache_ttl_seconds": -5},
        ["gateway_service_cache_ttl_seconds must be a positive number of seconds; got -5"],
    ),
    "max ttl below ttl": (
        {"gateway_service_cache_ttl_seconds": 600, "gateway_service_cache_max_ttl_seconds": 60},
        ["gateway_service_cache_max_ttl_seconds must be at least"],
    ),
    "scope not a choice": (
        {"gateway_service_cache_scope": "global"},
        ["gateway_service_cache_scope", "tenant, site"],
    ),
    "lookup budget zero": (
        {"gateway_service_redis_lookup_budget_ms": 0},
        ["gateway_service_redis_lookup_budget_ms must be 1 to 10000 ms"],
    ),
    "a deciding field excluded from the key": (
        {"gateway_service_cache_excluded_fields": ["user", "temperature"]},
        ["gateway_service_cache_excluded_fields may not leave ['temperature'] out"],
    ),
    "a cache path that is not an API path": (
        {"gateway_service_cache_paths": ["v1/chat"]},
        ["gateway_service_cache_paths must be API paths", "v1/chat"],
    ),
    "request records kept for no day": (
        {"gateway_service_request_audit_retention_days": 0},
        ["gateway_service_request_audit_retention_days must be 1 or more days", "got 0"],
    ),
    "request records kept shorter than cached answers": (
        {
            "gateway_service_request_audit_retention_days": 1,
            "gateway_service_request_audit_content_retention_days": 1,
            "gateway_service_cache_max_ttl_seconds": 172800,
        },
        ["gateway_service_request_audit_retention_days (1) is shorter than gateway_service_cache"],
    ),
    "the site's request retention shorter than cached answers": (
        {"audit_retention_request_days": 1, "gateway_service_cache_max_ttl_seconds": 172800},
        ["gateway_service_request_audit_retention_days (1) is shorter than gateway_service_cache"],
    ),
    "text kept for no day": (
        {"gateway_service_request_audit_content_retention_days": 0},
        ["gateway_service_request_audit_content_retention_days must be 1 or more days", "got 0"],
    ),
    "text kept longer than the records that say who asked": (
        {
            "gateway_service_request_audit_retention_days": 30,
            "gateway_service_request_audit_content_retention_days": 60,
        },
        ["gateway_service_request_audit_content_retention_days (60) is longer than"],
    ),
    "text kept shorter than cached answers": (
        {
            "gateway_service_request_audit_content_retention_days": 1,
            "gateway_service_cache_max_ttl_seconds": 172800,
            "gateway_service_request_audit_content_tenants": ["team-a"],
            "gateway_service_request_audit_pseudonymisation_key": PSEUDONYM_KEY,
        },
        ["gateway_service_request_audit_content_retention_days (1) is shorter than gateway_"],
    ),
    "content logging without a pseudonymisation key": (
        {"gateway_service_request_audit_content_tenants": ["team-a"]},
        ["gateway_service_request_audit_pseudonymisation_key must hold 32 bytes or more"],
    ),
    "content logging with the request audit off": (
        {
            "gateway_service_request_audit": False,
            "gateway_service_request_audit_content_tenants": ["team-a"],
            "gateway_service_request_audit_pseudonymisation_key": PSEUDONYM_KEY,
        },
        ["gateway_service_request_audit_content_tenants is set but gateway_service_request_audit"],
    ),
    "content logging for a tenant without a key": (
        {
            "haproxy_api_keys": {"team-a": "sk-team-a-0123456789abcdef0123456789abcdef"},
            "gateway_service_request_audit_content_tenants": ["team-x"],
            "gateway_service_request_audit_pseudonymisation_key": PSEUDONYM_KEY,
        },
        [
            "gateway_service_request_audit_content_tenants names tenants without an API key",
            "team-x",
        ],
    ),
}


def test_every_bad_input_is_reported_in_one_run(validate_input, assert_rejected, wheel):
    gateways = {f"gateway-{index}": bad for index, (bad, _unused) in enumerate(BAD_INPUT.values())}
    result = validate_input(inventory(gateways, good_vars(wheel)))
    output = assert_rejected(result, [], "several bad gateways")
    for index, (case, (_bad, expected)) in enumerate(BAD_INPUT.items()):
        assert f"gateway-{index}" in output, case
        for text in expected:
            assert text in output, f"{case}: {text!r} not in output:\n{output}"
    assert PASSWORD not in output
    assert PSEUDONYM_KEY not in output


def test_no_redis_host_is_an_error(validate_input, assert_rejected, wheel):
    result = validate_input(inventory({"gateway-1": {}}, good_vars(wheel), redis_hosts=()))
    assert_rejected(
        result, ["inventory group 'redis' (gateway_service_redis_group) has no hosts"], "no redis"
    )
