"""Requests the gateway refuses, and everything it passes through unchanged."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from gateway_fakes import CHAT, chat_body

pytestmark = pytest.mark.asyncio


def openai_error(body: bytes) -> dict[str, Any]:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_a_request_without_the_tenant_header_is_refused(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    response, body = await gw.post(CHAT, chat_body(), tenant=None)
    assert response.status == 400
    assert openai_error(body)["code"] == "missing_tenant"
    assert "X-Tenant-ID" in openai_error(body)["message"]
    assert response.headers["Cache-Status"] == "onprem-llm; detail=invalid-request"
    response, _unused = await gw.post(CHAT, chat_body(), tenant="")
    assert response.status == 400
    assert engine.calls == 0


async def test_invalid_json_is_refused_without_calling_the_engine(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    for raw in (b"{not json", b"", b"\xff\xfe\x00", b"[" * 4000):
        response, body = await gw.post(CHAT, raw)
        assert response.status == 400
        error = openai_error(body)
        assert error == {
            "message": "the request body is not valid JSON",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_json",
        }
        assert "Cache-Status" in response.headers
    assert engine.calls == 0


async def test_a_body_over_max_body_bytes_is_refused(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway(max_body_bytes=300)
    big = chat_body(messages=[{"role": "user", "content": "x" * 400}])
    response, body = await gw.post(CHAT, big)
    assert response.status == 413
    assert openai_error(body)["code"] == "request_too_large"
    assert response.headers["Cache-Status"] == "onprem-llm; detail=invalid-request"

    async def chunks() -> Any:
        yield b'{"model": "tiny-llama", "messages": "'
        yield b"y" * 400
        yield b'"}'

    response = await gw.client.post(CHAT, data=chunks(), headers={"X-Tenant-ID": "acme"})
    assert response.status == 413, "also without Content-Length"
    exact = json.dumps(chat_body()).encode()
    gw_exact = await make_gateway(max_body_bytes=len(exact))
    response, _unused = await gw_exact.post(CHAT, exact)
    assert response.status == 200
    assert engine.calls == 1


async def test_valid_json_that_is_not_cacheable_is_passed_to_the_engine(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    response, _unused = await gw.post(CHAT, {"model": "tiny-llama", "messages": [], "n": 3})
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=not-deterministic"
    response, _unused = await gw.post(CHAT, {"messages": [], "temperature": 0, "model": None})
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=not-cacheable"
    assert engine.calls == 2


async def test_other_paths_and_methods_pass_through_unchanged(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    response = await gw.client.get("/v1/models", headers={"X-Tenant-ID": "acme"})
    assert response.status == 200
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=path"
    assert (await response.json())["data"][0]["id"] == "tiny-llama"

    response = await gw.client.put(
        "/echo?a=1&q=x%20y%26z",
        data=b"raw bytes \x00\x01",
        headers={
            "X-Tenant-ID": "acme",
            "X-API-Key-ID": "k-7",
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Private",
            "X-Private": "dropped: named by Connection",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Accept-Encoding": "gzip",
        },
    )
    seen = await response.json()
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == "/echo?a=1&q=x%20y%26z"
    assert seen["body"] == "raw bytes \x00\x01"
    headers = seen["headers"]
    assert headers["x-custom"] == "kept"
    assert headers["x-tenant-id"] == "acme" and headers["x-api-key-id"] == "k-7"
    assert headers["accept-encoding"] == "gzip", "passed through on paths not interpreted"
    for dropped in ("x-private", "keep-alive", "te"):
        assert dropped not in headers
    assert headers["host"] == engine.url.split("//", 1)[1], "Host is the engine's"
    assert response.headers["X-Upstream"] == "yes"
    assert "Keep-Alive" not in response.headers
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=path"

    response, _unused = await gw.post("/v1/audio/speech", {"model": "x"})
    assert response.status == 404, "the engine's answer, whatever it is"
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=path"


async def test_api_requests_ask_the_engine_for_uncompressed_answers(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body(), headers={"Accept-Encoding": "gzip, br"})
    assert engine.headers[-1]["Accept-Encoding"] == "identity"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_engine_is_a_502_in_openai_shape(make_gateway: Any) -> None:
    gw = await make_gateway(upstream_url=f"http://127.0.0.1:{closed_port()}")
    response, body = await gw.post(CHAT, chat_body())
    assert response.status == 502
    assert openai_error(body)["code"] == "upstream_unavailable"
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss"
    assert gw.sample("onprem_llm_gateway_upstream_responses_total", status="error") == 1
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.status == 502, "nothing was stored"
