"""Requests from a client over HTTPS through the gateways to real vLLM engines (CPU build, tiny
model made by the tests), a container-mode engine (stand-in image loaded from an archive) and,
when every engine is down, the cloud API stand-in for public requests only.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import testinfra

testinfra_hosts = ["podman://serving-client"]

GATEWAYS = [testinfra.get_host(f"podman://serving-gw{i}") for i in (1, 2)]
NATIVE = [testinfra.get_host(f"podman://serving-engine{i}") for i in (1, 2)]
CONTAINER = testinfra.get_host("podman://serving-engine3")
ENGINES = [*NATIVE, CONTAINER]
CLOUD = testinfra.get_host("podman://serving-cloud")
KEY_A = "sk-test-team-a-0123456789abcdef0123456789"
KEY_LIMITED = "sk-test-team-limited-0123456789abcdef01"
MODEL = "tiny-llama"
UNIT = "onprem-llm-engine@0.service"
CLOUD_RECORD = "/var/lib/cloud-api-stand-in.jsonl"
ADMIN = "unix-connect:/run/haproxy/admin.sock"

# Runs on the client: one request with urllib over HTTPS (CA-verified), prints status and body.
REQUEST = r"""
import json, ssl, sys, urllib.request, urllib.error
url, key, data_class, body = sys.argv[1:5]
request = urllib.request.Request(url, data=body.encode() if body else None)
request.add_header("Content-Type", "application/json")
if key:
    request.add_header("Authorization", "Bearer " + key)
if data_class:
    request.add_header("X-Data-Class", data_class)
context = ssl.create_default_context(cafile="/etc/onprem-llm-test-ca.crt")
try:
    with urllib.request.urlopen(request, context=context, timeout=60) as reply:
        print(json.dumps({"status": reply.status, "body": reply.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode()}))
"""

# Runs on the client: N sequential chat requests; one line per request: status and who answered.
SEQUENTIAL = r"""
import json, ssl, sys, time, urllib.request, urllib.error
url, key, count, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
context = ssl.create_default_context(cafile="/etc/onprem-llm-test-ca.crt")
body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
for _ in range(count):
    request = urllib.request.Request(url, data=json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as reply:
            answer = json.loads(reply.read())
            who = answer.get("stand_in") or answer.get("system_fingerprint") or "?"
            print(reply.status, who, flush=True)
    except urllib.error.HTTPError as error:
        print(error.code, "-", flush=True)
    except Exception as error:
        print("000", type(error).__name__, flush=True)
    time.sleep(0.1)
"""


def address(host):
    return host.check_output("hostname -I").split()[0]


@pytest.fixture(scope="module")
def gateway_addresses():
    return [address(gateway) for gateway in GATEWAYS]


def call(client, gateway, path, key=KEY_A, body="", data_class=""):
    out = client.check_output(
        f"python3 -c '{REQUEST}' https://{gateway}{path} '{key}' '{data_class}' '{body}'"
    )
    result = json.loads(out)
    try:
        result["json"] = json.loads(result["body"])
    except ValueError:
        result["json"] = None
    return result


def chat(client, gateway, key=KEY_A, data_class="", max_tokens=8):
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hello, how are you?"}],
            "max_tokens": max_tokens,
        }
    )
    return call(client, gateway, "/v1/chat/completions", key, body, data_class)


def engines_up(gateway):
    # UP, and "UP 1/2" while failing checks on the way down, take traffic.
    out = gateway.check_output(f"echo 'show stat' | socat stdio {ADMIN}")
    return {
        line.split(",")[1]
        for line in out.splitlines()
        if line.startswith("engines,serving-engine") and line.split(",")[17].startswith("UP")
    }


def wait_for_engines(count, timeout=480):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(len(engines_up(gateway)) == count for gateway in GATEWAYS):
            return
        time.sleep(1)
    states = [sorted(engines_up(gateway)) for gateway in GATEWAYS]
    raise AssertionError(f"gateways did not see {count} engines up in {timeout}s: {states}")


def start_engines():
    for engine in ENGINES:
        engine.check_output(f"systemctl start {UNIT}")
    wait_for_engines(len(ENGINES))


def assert_openai_error(result, status, code):
    assert result["status"] == status, result
    assert result["json"]["error"]["code"] == code, result
    assert set(result["json"]["error"]) >= {"message", "type", "param", "code"}


def cloud_records():
    text = CLOUD.run(f"cat {CLOUD_RECORD}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_engine_instance_is_behind_both_gateways():
    wait_for_engines(3)
    for gateway in GATEWAYS:
        assert engines_up(gateway) == {
            "serving-engine1-0",
            "serving-engine2-0",
            "serving-engine3-0",
        }


def test_valid_key_gets_real_tokens_from_vllm(host, gateway_addresses):
    wait_for_engines(3)
    answers = []
    for gateway in gateway_addresses:
        for _ in range(3):
            result = chat(host, gateway, max_tokens=8)
            assert result["status"] == 200, result
            answers.append(result["json"])
    real = [answer for answer in answers if "stand_in" not in answer]
    # leastconn rotates over the three engines: two of every three answers are vLLM's.
    assert len(real) >= 2, answers
    for answer in real:
        assert answer["model"] == MODEL
        assert answer["system_fingerprint"].startswith("vllm-")
        assert answer["usage"]["completion_tokens"] > 0
        assert answer["usage"]["prompt_tokens"] > 0
        assert answer["choices"][0]["message"]["content"]


def test_container_engine_answers_behind_the_gateway(host, gateway_addresses):
    wait_for_engines(3)
    seen = {chat(host, gateway_addresses[0])["json"].get("stand_in", "vllm") for _ in range(6)}
    assert "container-engine-stand-in" in seen, seen
    assert "vllm" in seen, seen
    # It runs from the loaded image with the model store mounted read-only, on the internal
    # address only.
    inspect = json.loads(CONTAINER.check_output("docker inspect onprem-llm-engine-0"))[0]
    assert inspect["Config"]["Image"] == "localhost/onprem-llm-stand-in-engine:serving"
    mounts = {mount["Destination"]: mount for mount in inspect["Mounts"]}
    assert mounts["/models"]["RW"] is False
    binding = inspect["HostConfig"]["PortBindings"]["8000/tcp"][0]
    assert binding["HostIp"] == address(CONTAINER)


def test_vllm_runs_natively_from_the_wheelhouse_offline():
    for engine in NATIVE:
        unit = engine.check_output(f"systemctl show -p MainPID --value {UNIT}")
        environ = engine.check_output(f"tr '\\0' '\\n' < /proc/{unit}/environ")
        assert "HF_HUB_OFFLINE=1" in environ
        assert "VLLM_CPU_KVCACHE_SPACE=1" in environ
        assert engine.process.get(pid=int(unit)).user == "onprem-llm-engine"
        cmdline = engine.check_output(f"tr '\\0' ' ' < /proc/{unit}/cmdline")
        assert "-m vllm.entrypoints.openai.api_server" in cmdline
        assert f"--host {address(engine)} --port 8000" in cmdline
        version = engine.check_output(
            "/opt/onprem-llm/engine/venv/bin/python -c "
            "'import importlib.metadata as m; print(m.version(\"vllm-cpu\"))'"
        )
        assert version == "0.32.0"
        # Bound to the internal address only, not to loopback.
        assert engine.run("curl -s -m 3 http://127.0.0.1:8000/health").rc != 0


@pytest.mark.parametrize("key", ["", "sk-test-wrong-0123456789abcdef0123456789"])
def test_missing_or_wrong_key_gets_openai_401(host, gateway_addresses, key):
    assert_openai_error(chat(host, gateway_addresses[0], key=key), 401, "invalid_api_key")


def test_over_the_per_key_limit_gets_openai_429(host, gateway_addresses):
    results = [chat(host, gateway_addresses[1], key=KEY_LIMITED, max_tokens=2) for _ in range(5)]
    statuses = [result["status"] for result in results]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[-1] == 429, statuses
    assert_openai_error(results[-1], 429, "rate_limit_exceeded")


@pytest.mark.parametrize("path", ["/metrics", "/tokenize", "/detokenize", "/server_info"])
def test_engine_internals_are_not_served(host, gateway_addresses, path):
    body = json.dumps({"model": MODEL, "prompt": "hello"})
    for gateway in gateway_addresses:
        result = call(host, gateway, path, body=body)
        assert result["status"] == 403, result
        assert "vllm:" not in result["body"] and "tokens" not in result["body"]
    # vLLM does serve them, so the gateway is what refuses.
    engine = NATIVE[0]
    metrics = engine.check_output(f"curl -s http://{address(engine)}:8000/metrics")
    assert "vllm:num_requests_waiting" in metrics


def test_stopping_one_engine_loses_no_request(host, gateway_addresses):
    wait_for_engines(3)
    outcome = {}

    def run_requests():
        outcome["lines"] = host.check_output(
            f"python3 -c '{SEQUENTIAL}' https://{gateway_addresses[0]}/v1/chat/completions "
            f"{KEY_A} 40 {MODEL}"
        ).splitlines()

    worker = threading.Thread(target=run_requests)
    worker.start()
    try:
        time.sleep(2)
        NATIVE[0].check_output(f"systemctl stop {UNIT}")
        worker.join(timeout=300)
    finally:
        start_engines()
    lines = outcome["lines"]
    assert len(lines) == 40
    assert all(line.startswith("200 ") for line in lines), lines


def test_every_engine_down_restricted_gets_503_public_goes_to_cloud(host, gateway_addresses):
    wait_for_engines(3)
    before = len(cloud_records())
    try:
        for engine in ENGINES:
            engine.check_output(f"systemctl stop {UNIT}")
        wait_for_engines(0, timeout=60)
        for data_class in ("", "restricted", "confidential"):
            result = chat(host, gateway_addresses[0], data_class=data_class)
            assert_openai_error(result, 503, "no_engine_available")
        public = chat(host, gateway_addresses[1], data_class="public")
        assert public["status"] == 200, public
        assert public["json"]["stand_in"] == "cloud-api-stand-in"
    finally:
        start_engines()
    records = cloud_records()
    # Only the public request reached the cloud, with the cloud's key, not the tenant's.
    assert len(records) == before + 1, records
    assert all(record["data_class"] == "public" for record in records), records
    assert all(record["tenant_header"] is None for record in records)
