"""Purge: one tenant's entries (optionally one model's, optionally only old ones) go; the rest
stay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from gateway_fakes import CHAT, base_config, chat_body

from onprem_llm.gateway import __main__ as cli
from onprem_llm.gateway import store as store_module
from onprem_llm.gateway.purge import purge

PREFIX = "onprem-llm:"


def keys(sync_redis: Any, pattern: str = "*") -> list[str]:
    return sorted(key.decode() for key in sync_redis.scan_iter(match=f"{PREFIX}{pattern}"))


async def fill(make_gateway: Any, wall: float | None = None) -> Any:
    gw = await make_gateway()
    if wall is not None:
        gw.gateway._wall = lambda: wall
    for tenant in ("acme", "globex", "acme:x"):
        for model in ("tiny-llama", "org/other"):
            await gw.post(CHAT, chat_body(model=model), tenant=tenant)
    await gw.drain()
    return gw


@pytest.mark.asyncio
async def test_purge_removes_only_that_tenant(make_gateway: Any, sync_redis: Any) -> None:
    gw = await fill(make_gateway)
    client = gw.gateway.store.client
    assert len(keys(sync_redis, "cache:*")) == 6
    assert await purge(client, prefix=PREFIX, scope="acme", dry_run=True) == 2
    assert len(keys(sync_redis, "cache:*")) == 6
    assert await purge(client, prefix=PREFIX, scope="acme") == 2
    left = keys(sync_redis, "cache:*")
    assert len(left) == 4
    assert not [key for key in left if key.startswith(f"{PREFIX}cache:acme:")]
    assert len([key for key in left if key.startswith(f"{PREFIX}cache:acme%3Ax:")]) == 2


@pytest.mark.asyncio
async def test_purge_one_model(make_gateway: Any, sync_redis: Any) -> None:
    gw = await fill(make_gateway)
    client = gw.gateway.store.client
    assert await purge(client, prefix=PREFIX, scope="globex", model="org/other") == 1
    assert keys(sync_redis, "cache:globex:*")[0].startswith(f"{PREFIX}cache:globex:tiny-llama:")
    assert await purge(client, prefix=PREFIX, scope="globex", model="absent") == 0


@pytest.mark.asyncio
async def test_purge_older_than(make_gateway: Any, sync_redis: Any) -> None:
    gw = await fill(make_gateway, wall=10_000.0)
    client = gw.gateway.store.client
    [old, _unused] = keys(sync_redis, "cache:acme:*")
    planted = json.loads(sync_redis.get(old))
    planted["created"] = 9_000.0
    sync_redis.set(old, json.dumps(planted))
    sync_redis.set(f"{PREFIX}cache:acme:tiny-llama:{'0' * 64}", b"garbage")
    deleted = await purge(client, prefix=PREFIX, scope="acme", older_than=500, now=10_100.0)
    assert deleted == 2, "the old entry and the unreadable one"
    assert len(keys(sync_redis, "cache:acme:*")) == 1
    assert await purge(client, prefix=PREFIX, scope="acme", older_than=0, now=10_100.0) == 1


@pytest.mark.asyncio
async def test_purge_leaves_leases_and_other_prefixes(make_gateway: Any, sync_redis: Any) -> None:
    gw = await fill(make_gateway)
    sync_redis.set(f"{PREFIX}lease:acme:tiny-llama:{'1' * 64}", b"x")
    sync_redis.set(f"other:cache:acme:tiny-llama:{'1' * 64}", b"x")
    await purge(gw.gateway.store.client, prefix=PREFIX, scope="acme")
    assert sync_redis.exists(f"{PREFIX}lease:acme:tiny-llama:{'1' * 64}")
    assert sync_redis.exists(f"other:cache:acme:tiny-llama:{'1' * 64}")


def test_the_purge_command_prints_one_json_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)
    for tenant, model, digest in (("acme", "m1", "a"), ("acme", "m2", "b"), ("beta", "m1", "c")):
        entry = {"format": 1, "created": 1.0}
        sync.set(f"{PREFIX}cache:{tenant}:{model}:{digest * 64}", json.dumps(entry))
    monkeypatch.setattr(
        store_module, "build_client", lambda *_a, **_k: fakeredis.FakeAsyncRedis(server=server)
    )
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(base_config("http://127.0.0.1:1")))
    argv = ["purge", "--config", str(path), "--tenant", "acme", "--model", "m1"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {
        "deleted": 1,
        "semantic_removed": 0,
        "tenant": "acme",
        "model": "m1",
        "dry_run": False,
    }
    assert cli.main(["purge", "--config", str(path), "--tenant", "acme", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 1
    assert sync.dbsize() == 2


def test_the_purge_command_reports_redis_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = base_config("http://127.0.0.1:1")
    config["redis"]["hosts"] = [{"host": "127.0.0.1", "port": 1}]
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config))
    assert cli.main(["purge", "--config", str(path), "--tenant", "acme"]) == 1
    assert "purge failed" in capsys.readouterr().err


def test_the_evict_command_prints_one_json_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)
    entry, set_key = f"onprem-llm:cache:acme:m:{'a' * 64}", "onprem-llm:semantic:acme:m:e:2:c"
    sync.set(entry, b"{}")
    sync.execute_command("VADD", set_key, "VALUES", 2, 1, 0, "a" * 64)
    record = {"set": set_key, "element": "a" * 64, "entry": entry}
    sync.set("onprem-llm:semantic-hit:req-7", json.dumps(record))
    monkeypatch.setattr(
        store_module, "build_client", lambda *_a, **_k: fakeredis.FakeAsyncRedis(server=server)
    )
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(base_config("http://127.0.0.1:1")))
    assert cli.main(["evict", "--config", str(path), "--request-id", "req-7"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"request_id": "req-7", "found": True, "evicted": True, "entry": entry}
    assert not sync.exists(entry, "onprem-llm:semantic-hit:req-7")
    assert not sync.execute_command("VISMEMBER", set_key, "a" * 64)
    assert cli.main(["evict", "--config", str(path), "--request-id", " "]) == 2
