"""Redis as production has it: a cache user whose ACL allows only a few commands, sentinels."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from gateway_fakes import (
    CHAT,
    EMBEDDINGS,
    base_config,
    chat_body,
    granted_commands,
    merge,
    restricted_cache_client,
)
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import NoPermissionError

from onprem_llm.gateway.config import parse_config
from onprem_llm.gateway.purge import purge
from onprem_llm.gateway.store import build_client


@pytest.mark.asyncio
async def test_every_command_used_is_in_the_cache_users_acl(
    make_gateway: Any, engine: Any, redis_server: fakeredis.FakeServer
) -> None:
    restricted = await restricted_cache_client(
        redis_server, granted_commands("redis_cache_commands")
    )
    with pytest.raises(NoPermissionError):
        await restricted.expire("onprem-llm:x", 5)  # the ACL is enforced

    gw = await make_gateway(client=restricted)
    requests = [
        (CHAT, chat_body(), {}),
        (CHAT, chat_body(), {}),
        (CHAT, chat_body(), {"Cache-Control": "no-cache"}),
        (CHAT, chat_body(stream=True), {}),
        (CHAT, chat_body(stream=True, stream_options={"include_usage": True}), {}),
        (EMBEDDINGS, {"model": "tiny-llama", "input": "x"}, {}),
    ]
    for path, body, headers in requests:
        response, _unused = await gw.post(path, body, headers=headers)
        assert response.status == 200
        assert "cache-unavailable" not in response.headers["Cache-Status"]
        await gw.drain()
    assert await gw.gateway.store.ping()
    deleted = await purge(restricted, prefix="onprem-llm:", scope="acme", older_than=0)
    assert deleted == 3
    for operation in ("lookup", "store", "lease", "decode"):
        assert gw.sample("onprem_llm_gateway_cache_errors_total", operation=operation) == 0


def test_sentinel_mode_asks_the_sentinels_for_the_primary() -> None:
    config = parse_config(
        merge(
            base_config("http://127.0.0.1:1"),
            {
                "redis": {
                    "mode": "sentinel",
                    "hosts": [{"host": "10.0.0.9"}, {"host": "10.0.0.10", "port": 26380}],
                    "sentinel_master": "onprem-llm-cache",
                    "username": "onprem-llm-cache",
                }
            },
        )
    )
    client = build_client(config.redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "onprem-llm-cache"
    sentinels = pool.sentinel_manager.sentinels
    addresses = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in sentinels
    ]
    assert addresses == [("10.0.0.9", 26379), ("10.0.0.10", 26380)]
    assert pool.connection_kwargs["username"] == "onprem-llm-cache"
    assert pool.connection_kwargs["socket_connect_timeout"] == 0.2
