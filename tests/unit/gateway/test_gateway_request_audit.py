"""Request audit: one record per request, joined to HAProxy's log by its request id; no text
unless the tenant opted in, and then with personal data redacted and users pseudonymised."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from gateway_fakes import CHAT, TENANT, chat_body

from onprem_llm.gateway.audit import (
    AuditConfig,
    AuditError,
    RequestAudit,
    erase_tenant,
    pseudonym,
    redact,
    request_content,
)
from onprem_llm.gateway.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[3]
KEY = b"k" * 32
SECRET_QUESTION = "Is the merger with Initech on for March? Mail jane.doe@example.org"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+llm@mail.example.co.uk today", "write to [email] today"),
        ("call +49 30 1234567 or 030 12345678", "call [phone] or [phone]"),
        ("UK office (0)20 7946 0958", "UK office [phone]"),
        ("Jane (+49 30 1234567) paid 1,250.00 EUR", "Jane ([phone]) paid 1,250.00 EUR"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [iban] please"),
        ("GB82WEST12345698765432", "[iban]"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [card] exp 12/29"),
        ("card 5500-0000-0000-0004", "card [card]"),
        # Candidates that fail their checksum, and ordinary numbers, stay.
        ("DE89 3704 0044 0532 0130 01", "DE89 3704 0044 0532 0130 01"),
        ("4111 1111 1111 1112", "4111 1111 1111 1112"),
        (
            "order 12345 of 2026, version 1.2.3, pi 3.14159",
            "order 12345 of 2026, version 1.2.3, pi 3.14159",
        ),
        ("ticket 1234567890123 at 10:30", "ticket 1234567890123 at 10:30"),
    ],
)
def test_personal_data_is_redacted_and_ordinary_numbers_stay(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_pseudonyms_are_stable_per_key_and_reveal_nothing() -> None:
    first = pseudonym(KEY, "alice@example.org")
    assert first == pseudonym(KEY, "alice@example.org")
    assert first != pseudonym(b"x" * 32, "alice@example.org")
    assert first != pseudonym(KEY, "bob@example.org")
    assert len(first) == 32 and "alice" not in first


def test_request_content_reads_messages_parts_and_prompts() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "My IBAN is GB82WEST12345698765432"}],
            },
        ]
    }
    assert request_content(body) == [
        {"role": "system", "text": "Be brief."},
        {"role": "user", "text": "My IBAN is [iban]"},
    ]
    assert request_content({"prompt": ["a", "b"]}) == [
        {"role": "prompt", "text": "a"},
        {"role": "prompt", "text": "b"},
    ]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


HAPROXY_HEADERS = {
    "X-Request-ID": "client-chosen-id",
    "X-Onprem-Request-ID": "0b6c5a1e-6f3e-4c52-9d7e-1f2a3b4c5d6e",
    "X-API-Key-ID": "5f1d2c3b4a596877",
    "X-Onprem-Data-Class": "confidential",
    "X-Onprem-Route": "on-prem",
}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "pseudonymisation-key"
    path.write_bytes(KEY + b"\n")
    return path


@pytest.mark.asyncio
async def test_every_request_has_one_record_without_its_text(
    make_gateway: Any, tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    gw = await make_gateway(audit={"path": str(log)})
    question = chat_body(messages=[{"role": "user", "content": SECRET_QUESTION}], user="u-17")
    for _unused in range(2):  # a miss, then a hit
        response, _unused = await gw.post(CHAT, question, headers=HAPROXY_HEADERS)
        assert response.status == 200
        await gw.drain()
    response, _unused = await gw.post(CHAT, b"{not json", headers=HAPROXY_HEADERS)
    assert response.status == 400
    written = records(log)
    assert [(r["cache"], r["status"], r["route"]) for r in written] == [
        ("miss", 200, "on-prem"),
        ("hit", 200, "cache"),
        ("bypass", 400, "on-prem"),
    ]
    first = written[0]
    assert first["request_id"] == HAPROXY_HEADERS["X-Onprem-Request-ID"]
    assert (first["tenant"], first["key_id"], first["model"]) == (
        TENANT,
        HAPROXY_HEADERS["X-API-Key-ID"],
        "tiny-llama",
    )
    assert first["data_class"] == "confidential"
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] == 4
    assert written[1]["completion_tokens"] == 4
    assert first["duration_ms"] > 0 and first["time"].endswith("Z")
    text = log.read_text()
    # No text, and no user field at all without a pseudonymisation key.
    assert "Initech" not in text and "jane.doe" not in text and "u-17" not in text
    assert "user" not in first and "request" not in first


@pytest.mark.asyncio
async def test_content_of_an_opted_in_tenant_is_kept_redacted(
    make_gateway: Any, tmp_path: Path, key_file: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    content_log = tmp_path / "content.jsonl"
    audit = {
        "path": str(log),
        "content_path": str(content_log),
        "content_tenants": [TENANT],
        "pseudonymisation_key_file": str(key_file),
    }
    gw = await make_gateway(audit=audit)
    question = chat_body(messages=[{"role": "user", "content": SECRET_QUESTION}], user="u-17")
    await gw.post(CHAT, question, headers=HAPROXY_HEADERS)
    await gw.drain()
    await gw.post(CHAT, question, headers=HAPROXY_HEADERS)  # the hit keeps its answer too
    await gw.post(CHAT, question, tenant="other", headers=HAPROXY_HEADERS)
    miss, hit, other = records(log)
    # The text is in the content file only, one record per request of the opted-in tenant, joined
    # to its request record by the request id (and kept for its own, shorter retention).
    assert (miss["content"], hit["content"]) == (True, True) and "content" not in other
    assert not any("request" in record or "answer" in record for record in (miss, hit, other))
    kept = records(content_log)
    assert len(kept) == 2
    for record in kept:
        assert record["request_id"] == miss["request_id"] and record["tenant"] == TENANT
        assert record["request"] == [
            {"role": "user", "text": "Is the merger with Initech on for March? Mail [email]"}
        ]
        assert record["answer"] == ["Hello from the engine"]
        assert record["user"] == pseudonym(KEY, "u-17")
    assert other["user"] == pseudonym(KEY, "u-17")
    for written in (log, content_log):
        assert "jane.doe" not in written.read_text() and "u-17" not in written.read_text()
        assert written.stat().st_mode & 0o777 == 0o600


@pytest.mark.asyncio
async def test_no_audit_path_writes_nothing(make_gateway: Any, tmp_path: Path) -> None:
    gw = await make_gateway()
    assert not gw.gateway.audit.enabled
    response, _unused = await gw.post(CHAT, chat_body(), headers=HAPROXY_HEADERS)
    assert response.status == 200
    assert list(tmp_path.iterdir()) == []


def test_content_logging_needs_a_key_and_a_path(config_for: Any) -> None:
    with pytest.raises(ConfigError, match=r"audit.pseudonymisation_key_file: required when"):
        config_for(audit={"path": "/var/log/x.jsonl", "content_tenants": ["acme"]})
    with pytest.raises(ConfigError, match=r"audit.content_tenants: content logging needs"):
        config_for(audit={"content_tenants": ["acme"], "pseudonymisation_key_file": "/k"})
    with pytest.raises(ConfigError, match=r"audit.content_tenants: content logging needs"):
        config_for(
            audit={
                "path": "/var/log/r.jsonl",
                "content_tenants": ["acme"],
                "pseudonymisation_key_file": "/k",
            }
        )
    with pytest.raises(ConfigError, match=r"audit.content_path: must differ from audit.path"):
        config_for(audit={"path": "/var/log/r.jsonl", "content_path": "/var/log/r.jsonl"})
    with pytest.raises(ConfigError, match=r"audit.path: expected an absolute path"):
        config_for(audit={"path": "requests.jsonl"})


def test_a_short_key_is_refused_naming_its_file(tmp_path: Path) -> None:
    short = tmp_path / "key"
    short.write_bytes(b"too-short")
    with pytest.raises(AuditError, match=r"holds 9 bytes, at least 32 are needed"):
        RequestAudit(AuditConfig(pseudonymisation_key_file=str(short)))
    with pytest.raises(AuditError, match=r"cannot read"):
        RequestAudit(AuditConfig(pseudonymisation_key_file=str(tmp_path / "absent")))


def test_haproxy_sets_the_headers_the_service_reads() -> None:
    """The internal header names are written in two roles' vars: they must agree."""
    haproxy = yaml.safe_load((REPO / "roles/haproxy/vars/main.yml").read_text())
    service = yaml.safe_load((REPO / "roles/gateway_service/vars/main.yml").read_text())
    pairs = {
        "tenant": ("_haproxy_tenant_header", "_gateway_service_tenant_header"),
        "key id": ("_haproxy_key_id_header", "_gateway_service_key_id_header"),
        "route": ("_haproxy_route_header", "_gateway_service_route_header"),
        "data class": ("_haproxy_data_class_internal_header", "_gateway_service_data_class_header"),
        "request id": ("_haproxy_request_id_internal_header", "_gateway_service_request_id_header"),
    }
    for what, (set_by, read_by) in pairs.items():
        assert haproxy[set_by] == service[read_by], what
    template = (REPO / "roles/haproxy/templates/haproxy.cfg.j2").read_text()
    assert "set-header {{ _haproxy_request_id_internal_header }} %[unique-id]" in template
    defaults = parse_config(
        {
            "listen": {"host": "127.0.0.1", "port": 1},
            "upstream_url": "http://127.0.0.1:2",
            "cache": {"enabled": False},
        }
    )
    assert defaults.data_class_header == service["_gateway_service_data_class_header"]
    assert defaults.request_id_header == service["_gateway_service_request_id_header"]


def test_erasure_removes_one_tenants_records_everywhere_and_records_itself(
    tmp_path: Path,
) -> None:
    live = tmp_path / "requests.jsonl"
    audit = RequestAudit(AuditConfig(path=str(live)))
    for tenant in ("team-a", "team-c", "team-a", "team-c"):
        audit.write({"tenant": tenant, "request": [{"role": "user", "text": f"from {tenant}"}]})
    rotated = tmp_path / "requests.jsonl-20261203"
    rotated.write_text('{"tenant":"team-c","x":1}\n{"tenant":"team-b","x":2}\nnot json\n')
    old = tmp_path / "requests.jsonl-20261202.gz"
    with gzip.open(old, "wt") as handle:
        handle.write('{"tenant":"team-c","x":3}\n{"tenant":"team-a","x":4}\n')
    untouched = tmp_path / "requests.jsonl-20261201.gz"
    with gzip.open(untouched, "wt") as handle:
        handle.write('{"tenant":"team-a","x":5}\n')
    before = untouched.stat().st_mtime_ns

    counted = erase_tenant(str(live), "team-c", dry_run=True)
    assert (counted["records_removed"], counted["files"]) == (4, 3)
    assert "team-c" in rotated.read_text()

    result = erase_tenant(str(live), "team-c")
    assert (result["records_removed"], result["content_removed"], result["files"]) == (4, 0, 3)
    audit.write({"tenant": "team-a", "after": True})  # the service's open file still works
    tenants = [r.get("tenant") for r in records(live)]
    assert tenants == ["team-a", "team-a", "team-c", "team-a"]  # the third: the erasure event
    event = records(live)[2]
    assert (event["event"], event["scope"], event["records_removed"]) == ("erasure", "tenant", 4)
    assert rotated.read_text() == '{"tenant":"team-b","x":2}\nnot json\n'
    with gzip.open(old, "rt") as handle:
        assert handle.read() == '{"tenant":"team-a","x":4}\n'
    assert untouched.stat().st_mtime_ns == before
    # A second erasure finds nothing more (the event record is not the tenant's data).
    assert erase_tenant(str(live), "team-c")["records_removed"] == 0
    audit.close()


def test_erasing_a_user_removes_only_its_records_and_content(tmp_path: Path) -> None:
    live, content = tmp_path / "requests.jsonl", tmp_path / "content.jsonl"
    config = AuditConfig(
        path=str(live), content_path=str(content), content_tenants=frozenset({"t"})
    )
    audit = RequestAudit(config)
    alice, bob = pseudonym(KEY, "alice"), pseudonym(KEY, "bob")
    for number, (tenant, user) in enumerate(
        [("t", alice), ("t", bob), ("u", alice), ("t", alice), ("t", None)]
    ):
        record = {"request_id": f"r{number}", "tenant": tenant} | ({"user": user} if user else {})
        audit.write(record, {"request": [{"role": "user", "text": f"q{number}"}], "answer": []})
    rotated = tmp_path / "content.jsonl-20261203"
    rotated.write_text(json.dumps({"request_id": "old", "tenant": "t", "user": alice}) + "\n")

    result = erase_tenant(str(live), "t", content_path=str(content), user=alice)
    assert (result["records_removed"], result["content_removed"]) == (2, 3)
    assert [r["request_id"] for r in records(live)[:3]] == ["r1", "r2", "r4"]
    assert [r["request_id"] for r in records(content)] == ["r1", "r2", "r4"]
    assert rotated.read_text() == ""
    event = records(live)[-1]
    # The erasure says a user was erased, never which: the pseudonym would link its other traces.
    assert (event["event"], event["tenant"], event["scope"]) == ("erasure", "t", "user")
    # Alice's records of another tenant are that tenant's and stay.
    left = records(live) + records(content)
    assert [r["request_id"] for r in left if r.get("user") == alice] == ["r2", "r2"]
    audit.close()
