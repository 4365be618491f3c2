"""Fixtures for the gateway service: a fake engine, fake Redis, gateways under test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import fakeredis
import pytest
import pytest_asyncio
from gateway_fakes import FakeEngine, GatewayUnderTest, base_config, merge

from onprem_llm.gateway.app import Gateway
from onprem_llm.gateway.config import GatewayConfig, parse_config
from onprem_llm.gateway.metrics import GatewayMetrics


@pytest_asyncio.fixture
async def engine(aiohttp_server: Any) -> FakeEngine:
    fake = FakeEngine()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def redis_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def config_for(engine: FakeEngine) -> Callable[..., GatewayConfig]:
    def build(**overrides: Any) -> GatewayConfig:
        return parse_config(merge(base_config(engine.url), overrides))

    return build


@pytest_asyncio.fixture
async def make_gateway(
    aiohttp_client: Any,
    config_for: Callable[..., GatewayConfig],
    redis_server: fakeredis.FakeServer,
) -> Callable[..., Awaitable[GatewayUnderTest]]:
    async def make(*, client: Any = "fake", **overrides: Any) -> GatewayUnderTest:
        config = config_for(**overrides)
        redis = fakeredis.FakeAsyncRedis(server=redis_server) if client == "fake" else client
        gateway = Gateway(config, redis_client=redis, metrics=GatewayMetrics())
        return GatewayUnderTest(gateway, await aiohttp_client(gateway.app))

    return make


@pytest.fixture
def sync_redis(redis_server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    """A synchronous client on the same fake Redis, to inspect or plant entries."""
    return fakeredis.FakeRedis(server=redis_server)
