"""Bad Redis input fails before any host changes, naming the variable and what was expected.

The rules are called directly on a host's variables (role defaults and vars under the
inventory's values, as in a play), and a few cases run playbooks/validate_input.yml
controller-side only against a throwaway inventory whose hosts do not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.plugin_utils import _input_rules as rules
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    ROLES,
    HostVariables,
    layered,
    roles_for_host,
)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "redis"
REDIS_HOSTS = ["redis-1", "redis-2", "redis-3"]
GROUPS = {
    "all": [*REDIS_HOSTS, "gw-1", "mon-1"],
    "redis": REDIS_HOSTS,
    "gateways": ["gw-1"],
    "monitoring": ["mon-1"],
}
# Test passwords, made for these tests only; none may appear in any message.
PASSWORDS = {
    "redis_cache_password": "test-cache-0123456789abcdef",
    "redis_admin_password": "test-admin-0123456789abcdef",
    "redis_exporter_password": "test-exporter-0123456789abc",
    "redis_replication_password": "test-replication-0123456789",
    "redis_sentinel_password": "test-sentinel-0123456789abc",
}
# What the role's defaults would render to on a host with facts (no templar here).
HOST = {"redis_bind_address": "10.20.0.21", "redis_exporter_listen_address": "10.20.0.21:9121"}


def role_file(part: str) -> dict:
    return yaml.safe_load((ROLE / part / "main.yml").read_text()) or {}


def host(name: str = "redis-1", **inventory: object) -> HostVariables:
    raw = layered(role_file("defaults"), {**HOST, **PASSWORDS, **inventory}, role_file("vars"))
    return HostVariables(name, raw)


def messages(v: HostVariables, groups: dict | None = None) -> list[str]:
    found = []
    for rule in rules.RULES["redis"]:
        found.extend(rule(v, groups or GROUPS))
    for message in found:
        for password in PASSWORDS.values():
            assert password not in message
    return found


def test_the_role_is_validated_on_the_redis_hosts():
    assert "redis" in ROLES
    assert "redis" in roles_for_host("redis-1", GROUPS)
    assert "redis" not in roles_for_host("gw-1", GROUPS)


def test_good_input_passes_standalone_and_with_sentinel():
    assert messages(host()) == []
    assert messages(host(redis_sentinel_enabled=True)) == []


def test_vault_references_are_not_needed_to_validate():
    references = {name: f"{{{{ vault_{name} }}}}" for name in PASSWORDS}
    assert messages(host(**references, redis_sentinel_enabled=True)) == []


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_a_missing_password_names_the_variable_and_the_vault(name):
    found = messages(host(**{name: ""}, redis_sentinel_enabled=True))
    assert found == [
        f"{name} is empty: put the password in the vault and reference it, e.g. {name}: "
        f'"{{{{ vault_{name} }}}}".'
    ]


def test_sentinel_and_exporter_passwords_are_needed_only_when_used():
    v = host(
        redis_replication_password="",
        redis_sentinel_password="",
        redis_exporter_password="",
        redis_exporter_enabled=False,
    )
    assert messages(v) == []


def test_a_short_or_unquotable_password_is_refused_without_showing_it():
    for bad in ("short-pass", "has space 0123456789abc", 'quote"0123456789abcdef'):
        [message] = messages(host(redis_cache_password=bad))
        assert "redis_cache_password must hold at least 16 characters" in message
        assert bad not in message


def test_sentinel_needs_three_hosts_naming_the_group_and_the_count():
    groups = {**GROUPS, "redis": ["redis-1", "redis-2"]}
    [message] = messages(host(redis_sentinel_enabled=True, redis_sentinel_quorum=2), groups)
    assert "redis_sentinel_enabled needs at least 3 sentinels" in message
    assert "redis_sentinel_group 'redis', which has 2" in message


def test_a_quorum_above_the_number_of_sentinels_is_refused():
    [message] = messages(host(redis_sentinel_enabled=True, redis_sentinel_quorum=4))
    assert message.startswith("redis_sentinel_quorum (4) must be between 1 and the number")
    assert "(3, the hosts of redis_sentinel_group 'redis')" in message


def test_the_sentinel_group_must_hold_the_host():
    [message] = messages(
        host(redis_sentinel_enabled=True, redis_sentinel_group="cache"),
        {**GROUPS, "cache": ["redis-2", "redis-3", "gw-1"]},
    )
    assert "redis_sentinel_group 'cache' must be an inventory group holding this host" in message


def test_without_sentinel_its_settings_are_not_checked():
    assert messages(host(redis_sentinel_quorum=9), {**GROUPS, "redis": ["redis-1"]}) == []


BAD_INPUT = {
    "empty key prefix": ({"redis_cache_key_prefix": ""}, "redis_cache_key_prefix must be"),
    "key prefix with a pattern": ({"redis_cache_key_prefix": "llm*"}, "every key"),
    "admin command for the cache user": (
        {"redis_cache_commands": ["get", "flushall", "config|set"]},
        "redis_cache_commands must not grant ['flushall', 'config|set']",
    ),
    "category instead of commands": (
        {"redis_exporter_commands": ["+@read"]},
        "redis_exporter_commands: ['+@read'] are not command names",
    ),
    "same user twice": (
        {"redis_exporter_username": "onprem-llm-cache"},
        "used twice: ['onprem-llm-cache']",
    ),
    "default user": ({"redis_admin_username": "default"}, "Bad: ['default']"),
    "negative memory": ({"redis_maxmemory_mb": -1}, "redis_maxmemory_mb must be 0"),
    "memory share above 90 percent": (
        {"redis_maxmemory_percent": 95},
        "redis_maxmemory_percent 1-90 (got 95)",
    ),
    "bad snapshot points": (
        {"redis_persistence_save": "3600"},
        "redis_persistence_save must be 'seconds changes' pairs",
    ),
    "same port twice": ({"redis_sentinel_port": 6379}, "must be different ports"),
    "exporter on Redis' port": (
        {"redis_exporter_listen_address": "10.20.0.21:6379"},
        "redis_exporter_listen_address must be address:port",
    ),
    "the exporter behind its TLS terminator on the terminator's port": (
        {"redis_exporter_local_port": 9121},
        "redis_exporter_local_port must be a port 1-65535 other than Redis'",
    ),
    "the exporter behind its TLS terminator on Sentinel's port": (
        {"redis_exporter_local_port": 26379},
        "redis_exporter_local_port must be a port 1-65535 other than Redis'",
    ),
    "bind address that is not an address": (
        {"redis_bind_address": "redis-1.example"},
        "redis_bind_address must be the host's internal IP address",
    ),
    "relative certificate path": (
        {"redis_tls_private_key": "server.key"},
        "redis_tls_private_key must be absolute paths",
    ),
    "a group outside the intermediate profile": (
        {"redis_tls_curves": ["X25519", "X448"]},
        "redis_tls_curves must be some of X25519, P-256, P-384 (Mozilla intermediate); not "
        "allowed: ['X448']",
    ),
    "a CBC suite": (
        {"redis_tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA"},
        "redis_tls_ciphers must list TLS 1.2 suites with forward secrecy and AEAD",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_names_the_variable(case):
    bad_vars, expected = BAD_INPUT[case]
    found = messages(host(**bad_vars))
    assert any(expected in message for message in found), (case, found)


def inventory(redis_vars: dict, hosts: tuple[str, ...] = tuple(REDIS_HOSTS)) -> dict:
    return {
        "all": {
            "children": {
                "redis": {"hosts": {name: {} for name in hosts}, "vars": redis_vars},
            }
        }
    }


def test_the_validation_play_passes_good_input_without_showing_passwords(validate_input):
    result = validate_input(inventory({**PASSWORDS, "redis_sentinel_enabled": True}))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for password in PASSWORDS.values():
        assert password not in output


def test_the_validation_play_fails_naming_the_variable(validate_input, assert_rejected):
    bad = {
        **PASSWORDS,
        "redis_admin_password": "",
        "redis_sentinel_enabled": True,
        "redis_sentinel_quorum": 5,
        "redis_maxmemory_policy": "lru",
    }
    result = validate_input(inventory(bad, ["redis-1", "redis-2"]))
    # The argument specs are checked first: the policy is named, the rules wait for a fix.
    assert_rejected(result, ["redis_maxmemory_policy", "allkeys-lfu"], "policy")
    result = validate_input(inventory({**bad, "redis_maxmemory_policy": "allkeys-lru"}))
    output = assert_rejected(
        result,
        [
            "redis_admin_password is empty: put the password in the vault",
            "redis_sentinel_quorum (5) must be between 1 and the number of sentinels (3",
        ],
        "rules",
    )
    for password in PASSWORDS.values():
        assert password not in output
