"""The gateway service's response cache, end to end: real HAProxy, the service on both gateways,
a real Redis (TLS, ACL, Sentinel on three hosts) and the real vLLM engines. Requests go from the
client through the gateway's HTTPS listener; under-load tests count every failed request.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid

import pytest
import testinfra
from gateway_client import (
    CLIENT_DIR,
    GATEWAYS,
    KEY_A,
    MODEL,
    SERVICE_METRICS,
    address,
    cache_request,
    run_playbook,
    server_states,
    set_server_state,
)

testinfra_hosts = ["ansible://serving-client"]

KEY_B = "sk-test-team-b-0123456789abcdef0123456789"
KEY_LOAD = "sk-test-team-load-0123456789abcdef012345"
REDIS = [testinfra.get_host(f"ansible://serving-redis{i}") for i in (1, 2, 3)]
REDIS_NAMES = [f"serving-redis{i}" for i in (1, 2, 3)]
SERVICE = "onprem-llm-gateway.service"
MASTER = "onprem-llm-cache"
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")


@pytest.fixture(scope="module", autouse=True)
def vllm_only():
    """Every request of this module goes to the real vLLM engines: the container-mode engine
    is a stand-in that neither streams nor checks request limits as vLLM does."""
    stand_in = "serving-engine3-0"
    for gateway in GATEWAYS:
        set_server_state(gateway, stand_in, "drain")
    yield
    for gateway in GATEWAYS:
        set_server_state(gateway, stand_in, "ready")
    assert all(server_states(gateway)[stand_in].startswith("UP") for gateway in GATEWAYS)


@pytest.fixture(scope="module")
def base():
    # The address clients use: the first gateway (the VIP tests move the VIP around).
    return f"https://{address(GATEWAYS[0])}"


def ask(host, base, body, key=KEY_A, headers=None, path="/v1/chat/completions"):
    return cache_request(host, f"{base}{path}", key, body, headers)


def chat_body(content, temperature=0, stream=False, **extra):
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 6,
        "temperature": temperature,
        "stream": stream,
        **extra,
    }


def unique(text):
    return f"{text} {uuid.uuid4().hex[:12]}"


def ask_until_hit(host, base, body, key=KEY_A, timeout=15, misses=None):
    """Stores happen after the answer is sent: the repeat may need a moment to hit. A repeat
    that misses is answered by the engine and stored too (on a slow host, before the first
    store lands), so the answers it got are added to misses."""
    deadline = time.time() + timeout
    while True:
        result = ask(host, base, body, key)
        if "; hit" in result["cache"] or time.time() > deadline:
            return result
        if misses is not None:
            misses.append(result)
        time.sleep(0.3)


def assert_cache_works_again(host, base, when, timeout=60):
    """A new deterministic request is stored and then hit within timeout seconds."""
    body = chat_body(unique("Working again?"))
    deadline = time.time() + timeout
    while True:
        ask(host, base, body)
        if "; hit" in ask_until_hit(host, base, body, timeout=3)["cache"]:
            return
        assert time.time() < deadline, f"the cache did not work again {when}"


def metric_sum(name, **labels):
    """The sum of one counter over both gateways' services, for series matching labels."""
    total = 0.0
    for gateway in GATEWAYS:
        text = gateway.check_output(SERVICE_METRICS)
        for line in text.splitlines():
            if not line.startswith(name + "{"):
                continue
            series, value = line.rsplit(" ", 1)
            if all(f'{key}="{wanted}"' in series for key, wanted in labels.items()):
                total += float(value)
    return total


def redis_cli(host, *args, port=6379, user="onprem-llm-cache", password_var="cache"):
    passwords = {
        "cache": "redis-test-cache-0123456789abcdef",
        "sentinel": "redis-test-sentinel-0123456789abcdef",
    }
    auth = f"--user {user} --pass {passwords[password_var]}" if user else ""
    address_ = host.check_output("hostname -I").split()[0]
    return host.check_output(
        f"redis-cli --tls --cacert /etc/onprem-llm/pki/ca.crt -h {address_} -p {port} "
        f"{auth} --no-auth-warning {' '.join(args)}"
    )


def primary_address():
    for host in REDIS:
        if host.run("systemctl is-active redis-sentinel").rc == 0:
            out = redis_cli(
                host, "SENTINEL", "get-master-addr-by-name", MASTER, port=26379, user=""
            )
            return out.split()[0]
    raise AssertionError("no sentinel is running")


def under_load(host, base, action, workers=3, settle=3):
    """Run action() while the client sends requests; returns the load's summary."""
    stop = f"/tmp/cache-load-{uuid.uuid4().hex[:8]}.stop"
    client = "serving-client"
    output: list[str] = []
    load = threading.Thread(
        target=lambda: output.append(
            subprocess.run(
                [
                    "podman",
                    "exec",
                    client,
                    "python3",
                    f"{CLIENT_DIR}/cache_load.py",
                    base,
                    KEY_LOAD,
                    str(workers),
                    stop,
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            ).stdout
        )
    )
    load.start()
    time.sleep(settle)
    try:
        action()
        time.sleep(settle)
    finally:
        host.check_output(f"touch {stop}")
        load.join(timeout=300)
    summary = json.loads(output[0])
    print(json.dumps({key: summary[key] for key in ("ok", "failed", "cache", "seconds")}))
    return summary


def test_a_repeat_is_a_hit_with_the_same_body(host, base):
    body = chat_body(unique("What is the capital of France?"))
    first = ask(host, base, body)
    assert first["status"] == 200, first
    assert first["cache"].startswith("onprem-llm; fwd=miss"), first["cache"]
    answers = [first]
    second = ask_until_hit(host, base, body, misses=answers)
    assert second["status"] == 200
    assert second["cache"].startswith("onprem-llm; hit"), second["cache"]
    # The stored answer, byte for byte: the first, or a repeat's that was stored instead.
    assert second["body"] in [answer["body"] for answer in answers]
    assert int(second["headers"]["age"]) >= 0
    # The raw key is never exposed.
    assert all(len(part) < 64 for part in second["cache"].split(";"))


def test_stream_replay_equals_the_original_chunks(host, base):
    body = chat_body(unique("Count to three."), stream=True)
    first = ask(host, base, body)
    assert first["status"] == 200, first
    assert first["events"][-1].strip() == "data: [DONE]"
    # The client did not ask for usage: the chunk the service asked the engine for is not shown.
    assert not any('"choices":[]' in event.replace(" ", "") for event in first["events"])
    answers = [first]
    second = ask_until_hit(host, base, body, misses=answers)
    assert "; hit" in second["cache"], second["cache"]
    # Chunk for chunk the stream that was stored: the first, or a repeat's stored instead.
    assert second["events"] in [answer["events"] for answer in answers]
    # A client that asks for usage gets it on a hit too (stream_options is not in the key).
    with_usage = ask(host, base, {**body, "stream_options": {"include_usage": True}})
    assert "; hit" in with_usage["cache"], with_usage["cache"]
    usage = [json.loads(e[len("data: ") :]) for e in with_usage["events"] if '"usage"' in e]
    assert usage and usage[-1]["usage"]["completion_tokens"] > 0


def test_sampled_requests_are_never_cached(host, base):
    body = chat_body(unique("Tell me a story."), temperature=0.7)
    for _unused in range(3):
        result = ask(host, base, body)
        assert result["status"] == 200
        assert result["cache"] == "onprem-llm; fwd=bypass; detail=not-deterministic", result


def test_no_store_is_honoured(host, base):
    body = chat_body(unique("Do not keep this."))
    result = ask(host, base, body, headers={"Cache-Control": "no-store"})
    assert result["status"] == 200
    assert "fwd=bypass" in result["cache"] and "no-store" in result["cache"]
    time.sleep(1)
    again = ask(host, base, body)
    assert again["cache"].startswith("onprem-llm; fwd=miss"), again["cache"]


def test_two_tenants_asking_the_same_never_share(host, base):
    body = chat_body(unique("Shared question?"))
    ask(host, base, body, key=KEY_A)
    assert "; hit" in ask_until_hit(host, base, body, key=KEY_A)["cache"]
    other = ask(host, base, body, key=KEY_B)
    assert other["cache"].startswith("onprem-llm; fwd=miss"), other["cache"]


def test_a_client_sent_tenant_header_is_ignored(host, base):
    body = chat_body(unique("Whose entry is this?"))
    # team-a claims to be team-b: HAProxy replaces the header with its key's tenant.
    ask(host, base, body, key=KEY_A, headers={"X-Tenant-ID": "team-b"})
    assert "; hit" in ask_until_hit(host, base, body, key=KEY_A)["cache"]
    assert ask(host, base, body, key=KEY_B)["cache"].startswith("onprem-llm; fwd=miss")


def test_errors_are_never_stored(host, base):
    # Longer than the model's 512-token context: vLLM answers 400.
    body = chat_body(unique("Too long."), max_tokens=100000)
    first = ask(host, base, body)
    assert first["status"] == 400, first
    time.sleep(1)
    again = ask(host, base, body)
    assert again["status"] == 400
    assert "; hit" not in again["cache"] and "stored" not in again["cache"], again["cache"]


def test_bad_json_gets_an_openai_400_without_reaching_an_engine(host, base):
    result = ask(host, base, '{"model": "tiny-llama", ')
    assert result["status"] == 400, result
    assert json.loads(result["body"])["error"]["type"] == "invalid_request_error"


def test_token_counters_equal_the_usage_the_client_saw(host, base):
    labels = {"tenant": "team-b", "model": MODEL}
    before = {
        (kind, source): metric_sum(
            "onprem_llm_gateway_tokens_total", type=kind, source=source, **labels
        )
        for kind in ("prompt", "completion")
        for source in ("engine", "cache")
    }
    seen = {key: 0 for key in before}
    body = chat_body(unique("Accounting question"))
    for result in (ask(host, base, body, key=KEY_B), ask_until_hit(host, base, body, key=KEY_B)):
        usage = json.loads(result["body"])["usage"]
        source = "cache" if "; hit" in result["cache"] else "engine"
        seen[("prompt", source)] += usage["prompt_tokens"]
        seen[("completion", source)] += usage["completion_tokens"]
    stream = ask(
        host,
        base,
        chat_body(unique("Stream accounting"), stream=True, stream_options={"include_usage": True}),
        key=KEY_B,
    )
    usage = [json.loads(e[len("data: ") :])["usage"] for e in stream["events"] if '"usage"' in e]
    usage = [u for u in usage if u][-1]
    seen[("prompt", "engine")] += usage["prompt_tokens"]
    seen[("completion", "engine")] += usage["completion_tokens"]
    time.sleep(1)
    after = {
        key: metric_sum("onprem_llm_gateway_tokens_total", type=key[0], source=key[1], **labels)
        for key in before
    }
    assert {key: after[key] - before[key] for key in before} == seen
    assert seen[("completion", "cache")] > 0


def test_purge_removes_only_that_tenant(host, base):
    body = chat_body(unique("Purge me?"))
    for key in (KEY_A, KEY_B):
        ask(host, base, body, key=key)
        assert "; hit" in ask_until_hit(host, base, body, key=key)["cache"]
    output, ok, _seconds = run_playbook(
        "../../playbooks/cache_purge.yml", "-e", "cache_purge_tenant=team-b"
    )
    assert ok, output[-3000:]
    assert '"deleted":' in output.replace(" ", ""), output[-3000:]
    assert ask(host, base, body, key=KEY_B)["cache"].startswith("onprem-llm; fwd=miss")
    assert "; hit" in ask(host, base, body, key=KEY_A)["cache"]


def test_killing_the_gateway_service_under_load_fails_no_request(host, base):
    def kill():
        for gateway in GATEWAYS:
            gateway.check_output(f"systemctl kill --signal=KILL {SERVICE}")
        time.sleep(4)

    summary = under_load(host, base, kill)
    assert summary["failed"] == 0, summary["errors"]
    assert summary["ok"] > 10
    for gateway in GATEWAYS:
        assert gateway.service(SERVICE).is_running


def test_sentinel_failover_under_load_fails_no_request_and_the_cache_works_again(host, base):
    old = primary_address()
    old_host = next(r for r in REDIS if r.check_output("hostname -I").split()[0] == old)

    def fail_primary():
        old_host.check_output("systemctl stop redis-server")
        deadline = time.time() + 60
        while primary_address() == old:
            assert time.time() < deadline, "Sentinel did not promote a replica"
            time.sleep(1)

    try:
        summary = under_load(host, base, fail_primary)
    finally:
        old_host.check_output("systemctl start redis-server")
    assert primary_address() != old
    assert summary["failed"] == 0, summary["errors"]
    assert_cache_works_again(host, base, "after the failover")


def test_redis_down_under_load_fails_no_request(host, base):
    # Last: with every Redis down Sentinel's failover attempt fails, and it waits twice its
    # failover timeout before trying again for the same primary.
    def stop_and_start():
        for redis in REDIS:
            redis.check_output("systemctl stop redis-server")
        time.sleep(8)
        for redis in REDIS:
            redis.check_output("systemctl start redis-server")

    summary = under_load(host, base, stop_and_start)
    assert summary["failed"] == 0, summary["errors"]
    assert summary["cache"].get("fwd=miss", 0) > 0
    assert_cache_works_again(host, base, "after Redis came back")
