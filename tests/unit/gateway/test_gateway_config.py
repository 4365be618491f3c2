"""Configuration: the documented file is accepted; a bad value names its key and what was
expected; the command line exits 2 on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gateway_fakes import base_config, merge

from onprem_llm.gateway.__main__ import main
from onprem_llm.gateway.config import ConfigError, load_config, parse_config

FULL = {
    "listen": {"unix": "/run/onprem-llm-gateway/gateway.sock"},
    "metrics_listen": {"host": "10.0.0.5", "port": 8081},
    "upstream_url": "http://127.0.0.1:8481/",
    "upstream_timeout_seconds": 600,
    "tenant_header": "X-Tenant-ID",
    "key_id_header": "X-API-Key-ID",
    "max_body_bytes": 1048576,
    "redis": {
        "mode": "sentinel",
        "hosts": [{"host": "10.0.0.9", "port": 26379}, {"host": "10.0.0.10", "port": 26379}],
        "sentinel_master": "onprem-llm-cache",
        "sentinel_username": None,
        "sentinel_password_file": None,
        "username": "onprem-llm-cache",
        "password_file": None,
        "tls": False,
        "ca_file": None,
        "server_name": None,
        "db": 0,
        "key_prefix": "onprem-llm:",
        "lookup_budget_ms": 20,
        "write_timeout_ms": 200,
        "connect_timeout_ms": 200,
        "retry_after_error_seconds": 1,
    },
    "cache": {
        "enabled": True,
        "ttl_seconds": 3600,
        "max_ttl_seconds": 86400,
        "max_entry_bytes": 1048576,
        "scope": "tenant",
        "paths": ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"],
        "excluded_fields": ["user", "metadata", "stream_options", "store"],
        "lease_ms": 30000,
        "cache_salt": False,
    },
    "models": {"tiny-llama": {"revision": "abc123"}, "other": {}},
}


def test_the_documented_configuration_is_accepted() -> None:
    config = parse_config(FULL)
    assert config.listen.unix == "/run/onprem-llm-gateway/gateway.sock"
    assert config.listen.mode == 0o660
    assert config.metrics_listen is not None and config.metrics_listen.port == 8081
    assert config.upstream_url == "http://127.0.0.1:8481"
    assert config.redis.mode == "sentinel" and len(config.redis.hosts) == 2
    assert config.cache.paths == frozenset(FULL["cache"]["paths"])
    assert config.revision("tiny-llama") == "abc123"
    assert config.revision("other") == "" and config.revision("unknown") == ""


def test_defaults_fill_what_is_left_out() -> None:
    config = parse_config(
        {
            "listen": {"host": "127.0.0.1", "port": 8480},
            "upstream_url": "http://127.0.0.1:8481",
            "redis": {"hosts": [{"host": "10.0.0.9"}]},
        }
    )
    assert config.redis.hosts[0].port == 6379
    assert config.redis.lookup_budget_ms == 20
    assert config.cache.scope == "tenant" and config.cache.ttl_seconds == 3600
    assert "stream_options" in config.cache.excluded_fields
    assert config.metrics_listen is None


def test_passwords_are_read_from_files_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret\n")
    config = parse_config(merge(FULL, {"redis": {"password_file": str(secret)}}))
    assert config.redis.password == "s3cret"
    assert "s3cret" not in repr(config.listen)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"listen": {"host": "127.0.0.1", "port": 0}}, "listen.port: expected an integer 1..65535"),
    ({"listen": {"unix": "relative.sock"}}, "listen.unix: expected an absolute path"),
    ({"listen": {"unix": "/run/x.sock", "mode": "rw"}}, "listen.mode: expected an octal"),
    ({"listen": {"unix": "/run/x.sock", "port": 1}}, "listen: expected either unix"),
    ({"upstream_url": "ftp://x"}, "upstream_url: expected an http(s) URL"),
    ({"upstream_timeout_seconds": "600"}, "upstream_timeout_seconds: expected a number"),
    ({"max_body_bytes": True}, "max_body_bytes: expected an integer"),
    ({"tenant_header": ""}, "tenant_header: expected a non-empty string"),
    ({"redis": {"mode": "cluster"}}, "redis.mode: expected 'standalone' or 'sentinel'"),
    ({"redis": {"hosts": []}}, "redis.hosts: expected a non-empty list"),
    ({"redis": {"mode": "standalone"}}, "redis.hosts: expected one host in standalone mode"),
    ({"redis": {"hosts": [{"host": "h", "port": 70000}]}}, "redis.hosts[0].port"),
    ({"redis": {"hosts": [{"port": 1}]}}, "redis.hosts[0].host: missing"),
    ({"redis": {"lookup_budget_ms": 0}}, "redis.lookup_budget_ms: expected an integer"),
    ({"redis": {"password_file": "/nonexistent/pw"}}, "redis.password_file: cannot read"),
    ({"redis": {"ca_file": "/nonexistent/ca.crt"}}, "redis.ca_file: /nonexistent/ca.crt"),
    ({"redis": {"tls": "yes"}}, "redis.tls: expected true or false"),
    ({"cache": {"scope": "global"}}, "cache.scope: expected 'tenant' or 'site'"),
    ({"cache": {"ttl_seconds": 90000}}, "cache.ttl_seconds: expected at most"),
    ({"cache": {"paths": ["v1/chat"]}}, "cache.paths: expected paths starting with /"),
    ({"cache": {"excluded_fields": "user"}}, "cache.excluded_fields: expected a list"),
    ({"cache": {"lease_ms": -1}}, "cache.lease_ms: expected an integer >= 0"),
    ({"cache": {"ttl": 5}}, "cache.ttl: unknown key"),
    ({"models": {"m": {"revision": 3}}}, "models.m.revision: expected a string"),
    ({"models": {"m": "rev"}}, "models.m: expected a JSON object"),
    ({"listen_port": 1}, "listen_port: unknown key"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_a_bad_value_names_its_key_and_what_was_expected(
    change: dict[str, Any], message: str
) -> None:
    data = merge(FULL, change)
    if "listen" in change:
        data["listen"] = change["listen"]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)


def test_a_required_key_missing_is_named() -> None:
    data = dict(FULL)
    del data["upstream_url"]
    with pytest.raises(ConfigError, match="upstream_url: missing"):
        parse_config(data)


def test_no_redis_hosts_needed_when_the_cache_is_off() -> None:
    config = parse_config(merge(FULL, {"redis": {"hosts": []}, "cache": {"enabled": False}}))
    assert config.redis.hosts == ()


def test_load_config_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{listen:")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(base_config("http://127.0.0.1:1")))
    assert load_config(good).upstream_url == "http://127.0.0.1:1"


def test_the_command_line_exits_2_naming_the_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(merge(FULL, {"cache": {"scope": "everyone"}})))
    assert main(["serve", "--config", str(path)]) == 2
    assert "cache.scope: expected 'tenant' or 'site'" in capsys.readouterr().err
    assert main(["purge", "--config", str(path), "--tenant", "acme"]) == 2


def test_the_command_line_refuses_bad_purge_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(FULL))
    assert main(["purge", "--config", str(path), "--tenant", "acme", "--older-than", "-5"]) == 2
    assert "--older-than" in capsys.readouterr().err
    assert main(["purge", "--config", str(path), "--tenant", " "]) == 2
    with pytest.raises(SystemExit) as caught:
        main(["purge", "--config", str(path)])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["purge", "--config", str(path), "--tenant", "a", "--older-than", "soon"])
    assert caught.value.code == 2
