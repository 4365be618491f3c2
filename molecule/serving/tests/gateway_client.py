"""What the serving tests share: requests sent from the client host over HTTPS (CA-verified)
through the gateways, OpenAI error checks, and the gateways' view of the engines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import scenario_playbooks
import testinfra

GATEWAYS = [testinfra.get_host(f"ansible://serving-gw{i}") for i in (1, 2)]
NATIVE = [testinfra.get_host(f"ansible://serving-engine{i}") for i in (1, 2)]
CONTAINER = testinfra.get_host("ansible://serving-engine3")
ENGINES = [*NATIVE, CONTAINER]
ENGINE_SERVERS = {"serving-engine1-0", "serving-engine2-0", "serving-engine3-0"}
CLOUD = testinfra.get_host("ansible://serving-cloud")
CA = "/etc/onprem-llm-test-ca.crt"
# The site's CA on every host (pki role): engines serve HTTPS with certificates it signed.
SITE_CA = "/etc/onprem-llm/pki/ca.crt"
# The gateway service's metrics, over TLS with the gateway's site certificate.
SERVICE_METRICS = f"curl -fsS --cacert {SITE_CA} https://127.0.0.1:8081/metrics"
KEY_A = "sk-test-team-a-0123456789abcdef0123456789"
KEY_LIMITED = "sk-test-team-limited-0123456789abcdef01"
CLOUD_KEY = "sk-test-cloud-key-0123456789abcdef"
MODEL = "tiny-llama"
# HAProxy backend of MODEL's engines (roles/haproxy: one backend per served model).
BACKEND = "model_tiny-llama"
UNIT = "onprem-llm-engine@0.service"
CLOUD_RECORD = "/var/lib/cloud-api-stand-in.jsonl"
ADMIN = "unix-connect:/run/haproxy/admin.sock"
SCENARIO_DIR = Path(__file__).resolve().parents[1]
# The scripts of molecule/serving/clients, which prepare.yml copies to the client host.
CLIENT_DIR = "/opt/onprem-llm-test-clients"


def address(host):
    return host.check_output("hostname -I").split()[0]


def call(client, gateway, path, key=KEY_A, body="", data_class=""):
    out = client.check_output(
        f"python3 {CLIENT_DIR}/request.py https://{gateway}{path} '{key}' '{data_class}' '{body}'"
    )
    result = json.loads(out)
    try:
        result["json"] = json.loads(result["body"])
    except ValueError:
        result["json"] = None
    return result


# The gateway fails open: a Redis lookup slower than its budget (20 ms) or a failover still
# settling skips the cache for the breaker's second and says so. Such a request reads and writes
# nothing in the cache, so it is asked again; a cache that stays away still fails the test.
CACHE_UNAVAILABLE = "onprem-llm; fwd=miss; detail=cache-unavailable"


def cache_request(client, url, key, body, headers=None, unavailable_for=15):
    """A request through the response cache: status, headers (lower-case names) and body, and
    "cache", its Cache-Status. body: a dict sent as JSON, or the raw text to send. Asked again
    for up to unavailable_for seconds while the gateway skips Redis (CACHE_UNAVAILABLE)."""
    text = body if isinstance(body, str) else json.dumps(body)
    sent = json.dumps(headers or {})
    command = f"python3 {CLIENT_DIR}/cache_request.py {url} '{key}' '{text}' '{sent}'"
    deadline = time.monotonic() + unavailable_for
    while True:
        result = json.loads(client.check_output(command))
        result["cache"] = result["headers"].get("cache-status", "")
        if result["cache"] != CACHE_UNAVAILABLE or time.monotonic() > deadline:
            return result
        time.sleep(1.2)


def chat(
    client,
    gateway,
    key=KEY_A,
    data_class="",
    max_tokens=8,
    content="Hello, how are you?",
    user=None,
):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    }
    if user is not None:
        body["user"] = user
    return call(client, gateway, "/v1/chat/completions", key, json.dumps(body), data_class)


def assert_openai_error(result, status, code):
    assert result["status"] == status, result
    assert result["json"]["error"]["code"] == code, result
    assert set(result["json"]["error"]) >= {"message", "type", "param", "code"}


def server_states(gateway):
    out = gateway.check_output(f"echo 'show stat' | socat stdio {ADMIN}")
    return {
        line.split(",")[1]: line.split(",")[17]
        for line in out.splitlines()
        if line.startswith(f"{BACKEND},serving-engine")
    }


def set_server_state(gateway, server, state):
    command = f"set server {BACKEND}/{server} state {state}"
    gateway.check_output(f"echo '{command}' | socat stdio {ADMIN}")


def engines_up(gateway):
    # UP, and "UP 1/2" while failing checks on the way down, take traffic.
    return {name for name, state in server_states(gateway).items() if state.startswith("UP")}


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


def cloud_records():
    text = CLOUD.run(f"cat {CLOUD_RECORD}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_playbook(name, *extra_args, timeout=600):
    """Run one of the scenario's playbooks with its inventory, as an operator would; returns
    the output, whether it succeeded and how many seconds it took."""
    return scenario_playbooks.run_playbook(SCENARIO_DIR / name, *extra_args, timeout=timeout)
