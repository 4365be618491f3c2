"""Several models on one site: each request reaches an engine of its model (seen on the engines'
own metrics), tenants see and use only their models, and cloud routes follow the data class:
a cloud-only model, and spill-over when a model's queue is long."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import pytest
import testinfra
from gateway_client import (
    ADMIN,
    CLIENT_DIR,
    GATEWAYS,
    KEY_A,
    MODEL,
    NATIVE,
    SERVICE_METRICS,
    SITE_CA,
    address,
    assert_openai_error,
    call,
    chat,
    cloud_records,
)
from scenario_playbooks import evaluate_on_controller

testinfra_hosts = ["ansible://serving-client"]

ENGINE_B = testinfra.get_host("ansible://serving-engine4")
# The second and third models: two instances of one host (engine_models), ports 8000 and 8001
# (its third, port 8002, is the embedding model).
MODEL_B = "tiny-llama-b"
MODEL_C = "tiny-llama-c"
CLOUD_MODEL = "stand-in-cloud-model"
CLOUD_ROUTE = "cloud:cloud-stand-in"
BACKEND_B = "model_tiny-llama-b"
KEY_B = "sk-test-team-b-0123456789abcdef0123456789"
KEY_C = "sk-test-team-c-0123456789abcdef0123456789"
ROUTED = "onprem_llm_gateway_routed_requests_total"


def vllm_successes(engine, model, port=8000):
    """Requests the engine finished for this served name, from its own /metrics."""
    text = engine.check_output(
        f"curl -s --cacert {SITE_CA} https://{address(engine)}:{port}/metrics"
    )
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{") and f'model_name="{model}"' in line
    )


def queued(gateway, backend):
    """Requests waiting in HAProxy for the backend's engines (show stat: qcur, field 2)."""
    stat = gateway.check_output(f"echo 'show stat' | socat stdio {ADMIN}")
    rows = [line.split(",") for line in stat.splitlines() if line.startswith(f"{backend},BACKEND,")]
    return int(rows[0][2] or 0) if rows else 0


def wait_until_up(gateway, backend, seconds):
    """Whether every server of the backend is UP (show stat: status, field 17) within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stat = gateway.check_output(f"echo 'show stat' | socat stdio {ADMIN}")
        rows = [
            line.split(",")
            for line in stat.splitlines()
            if line.startswith(f"{backend},")
            and not line.startswith(f"{backend},BACKEND,")
            and not line.startswith(f"{backend},FRONTEND,")
        ]
        if rows and all(row[17].startswith("UP") for row in rows):
            return True
        time.sleep(0.5)
    return False


def burst(client, gateway, data_class, model, count, gap=0.2, max_tokens=64, choices=1):
    out = client.check_output(
        f"python3 {CLIENT_DIR}/burst.py https://{gateway}/v1/chat/completions {KEY_A} "
        f"{data_class} {model} {count} {gap} {max_tokens} {choices}"
    )
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def gateway_address():
    return address(GATEWAYS[0])


def test_each_request_reaches_an_engine_of_its_model(host, gateway_address):
    def successes():
        return {
            "b": vllm_successes(ENGINE_B, MODEL_B),
            "c": vllm_successes(ENGINE_B, MODEL_C, port=8001),
            "a": sum(vllm_successes(engine, MODEL) for engine in NATIVE),
            # Names an instance does not serve: must stay 0.
            "elsewhere": vllm_successes(ENGINE_B, MODEL)
            + vllm_successes(ENGINE_B, MODEL_C)
            + vllm_successes(ENGINE_B, MODEL_B, port=8001)
            + sum(vllm_successes(e, MODEL_B) + vllm_successes(e, MODEL_C) for e in NATIVE),
        }

    before = successes()
    # Unique prompts: answered by engines, not by the response cache.
    for number in range(4):
        nonce = f"{uuid.uuid4().hex} {number}"
        answer = chat(host, gateway_address, max_tokens=2, content=f"Which model? {nonce}")
        assert answer["status"] == 200 and answer["route"] == "on-prem", answer
        for model in (MODEL_B, MODEL_C):
            message = {"role": "user", "content": nonce}
            body = {"model": model, "max_tokens": 2, "messages": [message]}
            other = call(host, gateway_address, "/v1/chat/completions", body=json.dumps(body))
            assert other["status"] == 200 and other["route"] == "on-prem", other
            assert other["json"]["model"] == model
    after = successes()
    # Each of the host's two instances finished exactly its own model's requests.
    assert after["b"] - before["b"] == 4
    assert after["c"] - before["c"] == 4
    assert after["elsewhere"] == before["elsewhere"] == 0
    # The first model's answers came from its engines (the stand-in engine3 or the two vLLMs).
    assert after["a"] - before["a"] <= 4


def test_models_list_holds_the_tenants_models_only(host, gateway_address):
    everything = call(host, gateway_address, "/v1/models")
    assert everything["status"] == 200, everything
    assert everything["json"]["object"] == "list"
    owners = {entry["id"]: entry["owned_by"] for entry in everything["json"]["data"]}
    assert owners == {
        MODEL: "on-premises",
        MODEL_B: "on-premises",
        MODEL_C: "on-premises",
        # One instance across two hosts (test_engine_span.py).
        "tiny-llama-wide": "on-premises",
        # The semantic cache's embedding model (test_semantic_cache.py), open to tenants too.
        "minilm": "on-premises",
        CLOUD_MODEL: "cloud",
    }
    team_b = call(host, gateway_address, "/v1/models", key=KEY_B)
    assert [entry["id"] for entry in team_b["json"]["data"]] == [MODEL]


def test_unknown_model_gets_404_model_not_found(host, gateway_address):
    body = json.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})
    result = call(host, gateway_address, "/v1/chat/completions", body=body)
    assert_openai_error(result, 404, "model_not_found")


def test_model_not_allowed_to_the_tenant_gets_403(host, gateway_address):
    body = json.dumps({"model": MODEL_B, "messages": [{"role": "user", "content": "x"}]})
    result = call(host, gateway_address, "/v1/chat/completions", key=KEY_B, body=body)
    assert_openai_error(result, 403, "model_not_allowed")
    # Its own model answers.
    assert chat(host, gateway_address, key=KEY_B, max_tokens=2)["status"] == 200


def test_undeclared_data_class_gets_400(host, gateway_address):
    result = chat(host, gateway_address, data_class="confidential", max_tokens=2)
    assert_openai_error(result, 400, "unknown_data_class")


def test_cloud_only_model_answers_public_and_refuses_restricted(host, gateway_address):
    before = len(cloud_records())
    body = json.dumps({"model": CLOUD_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    public = call(host, gateway_address, "/v1/chat/completions", body=body, data_class="public")
    assert public["status"] == 200, public
    assert public["route"] == CLOUD_ROUTE
    assert public["json"]["stand_in"] == "cloud-api-stand-in"
    for data_class in ("", "restricted", "internal"):
        refused = call(
            host, gateway_address, "/v1/chat/completions", body=body, data_class=data_class
        )
        assert_openai_error(refused, 403, "data_class_not_allowed")
    records = cloud_records()[before:]
    assert [(r["model"], r["data_class"]) for r in records] == [(CLOUD_MODEL, "public")]


def test_spill_over_sends_public_requests_to_the_cloud_and_keeps_restricted_ones(
    host, gateway_address
):
    before = len(cloud_records())
    # Two at a time reach the engine (engine_maxconn), one may wait (spill_over_queue). Sixteen
    # long restricted requests (8 choices of 480 tokens: about a second each on this CPU vLLM)
    # fill both slots and make the rest wait for seconds; public requests sent while the queue
    # is long then spill over. Each pair is sent from its own thread whenever the queue is read
    # long, so a pair that reached the engines first (and waits its turn) does not hold back the
    # next one: a fast engine or a slow client costs attempts, not the test.
    # A burst that ends before any public request spilled (the engine drained the queue between
    # two reads) is followed by another, up to three: timing costs rounds, not the test.
    blockers: list = []
    public: list = []
    for attempt in range(3):
        if attempt:
            assert wait_until_up(GATEWAYS[0], BACKEND_B, 60), queued(GATEWAYS[0], BACKEND_B)
        burst_results: list = []

        def block(out: list) -> None:
            long_requests = {"gap": 0, "max_tokens": 480, "choices": 8}
            out.extend(burst(host, gateway_address, "restricted", MODEL_B, 16, **long_requests))

        blocking = threading.Thread(target=block, args=(burst_results,))
        blocking.start()
        senders: list[threading.Thread] = []
        waited = time.monotonic()
        while blocking.is_alive() and CLOUD_ROUTE not in [r["route"] for r in public]:
            assert time.monotonic() - waited < 120, "the blocking requests never kept a queue"
            if len(senders) < 8 and queued(GATEWAYS[0], BACKEND_B) >= 2:
                sender = threading.Thread(
                    target=lambda: public.extend(
                        burst(host, gateway_address, "public", MODEL_B, 2, gap=0)
                    )
                )
                sender.start()
                senders.append(sender)
                time.sleep(0.5)
            else:
                time.sleep(0.1)
        blocking.join(timeout=300)
        for sender in senders:
            sender.join(timeout=300)
        blockers.extend(burst_results)
        if CLOUD_ROUTE in [r["route"] for r in public]:
            break
    assert all(result["status"] == 200 for result in public), public
    routes = [result["route"] for result in public]
    assert routes.count(CLOUD_ROUTE) >= 1, routes
    assert len(blockers) % 16 == 0, blockers
    assert [(r["status"], r["route"]) for r in blockers] == [(200, "on-prem")] * len(blockers)
    spilled = len(cloud_records()) - before
    assert spilled == routes.count(CLOUD_ROUTE)
    # A restricted burst waits in the queue: answered on premises, nothing leaves the site. The
    # CPU engine's /health can miss two checks while it generates the blockers' 61,440 tokens on
    # one core, so the burst waits until the gateway sees the engine up again (a request while
    # it is down gets 503: restricted requests have nowhere else to go).
    assert wait_until_up(GATEWAYS[0], BACKEND_B, 60), queued(GATEWAYS[0], BACKEND_B)
    restricted = burst(host, gateway_address, "restricted", MODEL_B, 10)
    assert all(r["status"] == 200 and r["route"] == "on-prem" for r in restricted), restricted
    assert len(cloud_records()) - before == spilled
    # The gateway service counted the spilled requests under their route, tenant and model.
    metrics = GATEWAYS[0].check_output(SERVICE_METRICS)
    labels = ('tenant="team-a"', f'model="{MODEL_B}"', f'route="{CLOUD_ROUTE}"')
    counted = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith(ROUTED + "{") and all(label in line for label in labels)
    ]
    assert counted and counted[0] >= spilled, metrics


def test_rate_limit_per_key_and_model(host, gateway_address):
    def ask(model):
        message = {"role": "user", "content": uuid.uuid4().hex}
        body = json.dumps({"model": model, "max_tokens": 1, "messages": [message]})
        return call(host, gateway_address, "/v1/chat/completions", key=KEY_C, body=body)

    # A fresh period (the test may run again within a minute).
    for gateway in GATEWAYS:
        gateway.check_output(f"echo 'clear table api_key_model_rates' | socat stdio {ADMIN}")
    # team-c may send 2 requests per period for tiny-llama-b; other models are not held back.
    assert [ask(MODEL_B)["status"] for _unused in range(2)] == [200, 200]
    limited = ask(MODEL_B)
    assert_openai_error(limited, 429, "rate_limit_exceeded")
    assert limited["retry_after"] == "60"
    assert ask(MODEL)["status"] == 200


# The hosts whose instances serve (serving-span2 runs a worker of serving-span1's instance).
ENGINE_HOSTS = [*(f"serving-engine{i}" for i in (1, 2, 3, 4)), "serving-span1"]
INSTANCE_HEADER = re.compile(r"^# Engine instance (\d+) \(([^)]+)\): .*, port (\d+)\.$", re.M)
SERVER_LINE = re.compile(r"^backend (\S+)|^    server (\S+) (\S+):(\d+)", re.M)


def test_the_placement_computed_without_facts_is_what_the_engines_run():
    """Gateways, Prometheus and the firewall compute engine instances from the inventory alone
    (a run limited to them has no facts of the GPU hosts); the engine hosts computed theirs in a
    run with their facts. Both give the same instances, ports and backends."""
    computed = evaluate_on_controller(
        "groups['engine_nodes'] | onprem.llm.engine_backends(hostvars, details=true)"
    )
    expected = {(i["host"], i["name"], int(i["port"]), i["backend"]) for i in computed}
    assert len(expected) == 7, computed

    running = set()
    for name in ENGINE_HOSTS:
        engine = testinfra.get_host(f"ansible://{name}")
        headers = engine.check_output("grep -h '^# Engine instance' /etc/onprem-llm/engine/*.env")
        listening = engine.check_output("ss -ltnH")
        for index, instance, port in INSTANCE_HEADER.findall(headers):
            assert engine.service(f"onprem-llm-engine@{index}").is_running, instance
            assert f":{port} " in listening, (instance, listening)
            running.add((name, instance, int(port)))
    assert running == {(host, instance, port) for host, instance, port, _unused in expected}

    for gateway in GATEWAYS:
        servers, backend = set(), None
        for section, server, _address, port in SERVER_LINE.findall(
            gateway.check_output("cat /etc/haproxy/haproxy.cfg")
        ):
            backend = section or backend
            if server and backend.startswith("model_"):
                servers.add((server, int(port), backend))
        assert servers == {(instance, port, model) for _unused, instance, port, model in expected}
