"""The gateway seen from a client over HTTPS: keys, limits, paths, TLS, failover, cloud backup.

Engines and the cloud API are stand-ins (tests/stand_ins/openai_api) on their own test host.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import testinfra

testinfra_hosts = ["podman://gateway-client"]

GATEWAY = testinfra.get_host("podman://gateway-gw")
STAND_INS = testinfra.get_host("podman://gateway-stand-ins")
CA = "/etc/onprem-llm-test-ca.crt"
KEY_A = "sk-test-team-a-0123456789abcdef0123456789"
KEY_LIMITED = "sk-test-team-limited-0123456789abcdef01"
CLOUD_KEY = "sk-test-cloud-key-0123456789abcdef"
CLOUD_RECORD = "/var/lib/cloud-api-stand-in.jsonl"
SCENARIO_DIR = Path(__file__).resolve().parents[1]

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
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        print(json.dumps({"status": reply.status, "body": reply.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode(),
                      "retry_after": error.headers.get("Retry-After")}))
"""

# Runs on the client: N sequential chat requests, one status per line.
SEQUENTIAL = r"""
import json, ssl, sys, time, urllib.request, urllib.error
url, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context(cafile="/etc/onprem-llm-test-ca.crt")
for _ in range(count):
    request = urllib.request.Request(url, data=json.dumps({"model": "m"}).encode())
    request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            print(reply.status, json.loads(reply.read())["stand_in"], flush=True)
    except urllib.error.HTTPError as error:
        print(error.code, "-", flush=True)
    time.sleep(0.1)
"""

# Runs on the client: TLS handshake with one protocol version and ALPN; prints the outcome.
HANDSHAKE = r"""
import socket, ssl, sys
address, version = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile="/etc/onprem-llm-test-ca.crt")
context.set_ciphers("DEFAULT:@SECLEVEL=0")
context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
context.set_alpn_protocols(["h2", "http/1.1"])
try:
    with context.wrap_socket(socket.create_connection((address, 443), 5),
                             server_hostname=address) as tls:
        print("accepted", tls.version(), tls.selected_alpn_protocol())
except ssl.SSLError as error:
    print("refused", error.reason)
"""


@pytest.fixture(scope="module")
def gateway_address():
    return GATEWAY.check_output("hostname -I").split()[0]


def call(host, address, path, key=KEY_A, body="", data_class=""):
    out = host.check_output(
        f"python3 -c '{REQUEST}' https://{address}{path} '{key}' '{data_class}' '{body}'"
    )
    result = json.loads(out)
    try:
        result["json"] = json.loads(result["body"])
    except ValueError:
        result["json"] = None
    return result


def chat(host, address, key=KEY_A, data_class="", model="m", content="hello"):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}]})
    return call(host, address, "/v1/chat/completions", key, body, data_class)


def engines_up():
    # Servers HAProxy still routes to: "UP", and "UP 1/2" while failing checks on the way down
    # (nbsrv counts those too); "DOWN 1/2" on the way up does not take traffic yet.
    out = GATEWAY.check_output(
        "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock"
    )
    return sum(
        1
        for line in out.splitlines()
        if line.startswith("engines,engine-") and line.split(",")[17].startswith("UP")
    )


def wait_for_engines(count, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if engines_up() == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"HAProxy did not see {count} engines up within {timeout}s")


def cloud_records():
    text = STAND_INS.run(f"cat {CLOUD_RECORD}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_openai_error(result, status, code):
    assert result["status"] == status, result
    assert result["json"]["error"]["code"] == code, result
    assert set(result["json"]["error"]) >= {"message", "type", "param", "code"}


def test_valid_key_gets_the_engine_answer(host, gateway_address):
    result = chat(host, gateway_address)
    assert result["status"] == 200, result
    assert result["json"]["stand_in"] in ("engine-a-stand-in", "engine-b-stand-in")
    assert result["json"]["choices"][0]["message"]["content"].startswith("answer from engine-")


def test_access_log_has_tenant_and_model_but_no_prompt(host, gateway_address):
    marker = f"prompt-text-{uuid.uuid4().hex}"
    model = f"model-{uuid.uuid4().hex[:8]}"
    assert chat(host, gateway_address, model=model, content=marker)["status"] == 200
    time.sleep(1)
    journal = GATEWAY.check_output("journalctl -u haproxy --no-pager -o cat")
    entries = [json.loads(line) for line in journal.splitlines() if f'"{model}"' in line]
    assert len(entries) == 1, journal[-2000:]
    entry = entries[0]
    assert entry["tenant"] == "team-a"
    assert entry["status"] == 200
    assert entry["path"] == "/v1/chat/completions"
    assert entry["data_class"] == "restricted"
    assert entry["backend"] == "engines"
    assert entry["bytes_out"] > 0 and entry["t_total_ms"] >= 0
    assert marker not in journal


@pytest.mark.parametrize("key", ["", "sk-test-wrong-0123456789abcdef0123456789"])
def test_missing_or_wrong_key_gets_openai_401(host, gateway_address, key):
    assert_openai_error(chat(host, gateway_address, key=key), 401, "invalid_api_key")


def test_over_the_per_key_limit_gets_openai_429(host, gateway_address):
    results = [chat(host, gateway_address, key=KEY_LIMITED) for _ in range(5)]
    statuses = [result["status"] for result in results]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[-1] == 429, statuses
    assert_openai_error(results[-1], 429, "rate_limit_exceeded")
    assert results[-1]["retry_after"] == "60"
    # Another key is not affected.
    assert chat(host, gateway_address)["status"] == 200


@pytest.mark.parametrize(("path", "status"), [("/metrics", 403), ("/tokenize", 403)])
def test_engine_internals_are_not_served(host, gateway_address, path, status):
    for body in ("", '{"model": "m", "prompt": "x"}'):
        result = call(host, gateway_address, path, body=body)
        assert result["status"] == status, result
        assert "stand_in" not in result["body"]
        assert "stand_in_engine_internal_metric" not in result["body"]
    # The stand-ins do serve them, so the gateway is what refuses.
    assert "stand_in_engine_internal_metric" in STAND_INS.check_output(
        "curl -s http://127.0.0.1:8001/metrics"
    )


def test_unknown_path_gets_404_json(host, gateway_address):
    assert_openai_error(call(host, gateway_address, "/v1/unknown"), 404, "not_found")


def test_http2_is_negotiated(host, gateway_address):
    assert host.check_output(f"python3 -c '{HANDSHAKE}' {gateway_address} TLSv1_2").endswith("h2")
    version = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_version}}' --cacert {CA} "
        f"-H 'Authorization: Bearer {KEY_A}' https://{gateway_address}/v1/models"
    )
    assert version == "2"


def test_tls_1_1_is_refused_by_the_gateway(host, gateway_address):
    outcome = host.check_output(f"python3 -c '{HANDSHAKE}' {gateway_address} TLSv1_1")
    # The server answers with a protocol_version alert: the refusal is the gateway's.
    assert outcome.startswith("refused"), outcome
    assert "PROTOCOL_VERSION" in outcome.upper(), outcome
    assert host.check_output(f"python3 -c '{HANDSHAKE}' {gateway_address} TLSv1_3").startswith(
        "accepted TLSv1.3"
    )


def test_exporter_and_stats_only_on_the_internal_listener(host, gateway_address):
    metrics = GATEWAY.check_output("curl -s http://127.0.0.1:8405/metrics")
    assert 'haproxy_backend_active_servers{proxy="engines"} 2' in metrics
    stats = "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8405/stats"
    assert GATEWAY.check_output(stats) == "200"
    # Not from other networks.
    status = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' http://{gateway_address}:8405/metrics"
    )
    assert status == "403"


def test_keys_are_stored_only_as_hashes(host):
    config = GATEWAY.check_output("cat /etc/haproxy/haproxy.cfg /etc/haproxy/maps/api_keys.map")
    assert KEY_A not in config and KEY_LIMITED not in config
    assert " team-a" in GATEWAY.check_output("cat /etc/haproxy/maps/api_keys.map")
    assert CLOUD_KEY not in GATEWAY.check_output("cat /etc/haproxy/haproxy.cfg")
    assert GATEWAY.file("/etc/haproxy/maps/upstream_keys.map").mode == 0o600
    assert GATEWAY.file("/etc/haproxy/haproxy.cfg").contains("Ansible managed")


def test_stopping_one_engine_loses_no_sequential_request(host, gateway_address):
    wait_for_engines(2)
    outcome = {}

    def run_requests():
        outcome["lines"] = host.check_output(
            f"python3 -c '{SEQUENTIAL}' https://{gateway_address}/v1/chat/completions {KEY_A} 40"
        ).splitlines()

    worker = threading.Thread(target=run_requests)
    worker.start()
    try:
        time.sleep(1.5)
        STAND_INS.check_output("systemctl stop engine-a-stand-in")
        worker.join(timeout=60)
    finally:
        STAND_INS.check_output("systemctl start engine-a-stand-in")
    lines = outcome["lines"]
    assert len(lines) == 40
    assert all(line.startswith("200 ") for line in lines), lines
    # Both engines served before the stop, only engine-b at the end.
    assert {"engine-a-stand-in", "engine-b-stand-in"} <= {line.split()[1] for line in lines}
    assert lines[-1].split()[1] == "engine-b-stand-in"
    wait_for_engines(2)


def test_all_engines_down_restricted_stays_public_goes_to_cloud(host, gateway_address):
    wait_for_engines(2)
    before = len(cloud_records())
    # With engines up even public requests stay on site.
    assert chat(host, gateway_address, data_class="public")["json"]["stand_in"] != (
        "cloud-api-stand-in"
    )
    STAND_INS.check_output("systemctl stop engine-a-stand-in engine-b-stand-in")
    try:
        wait_for_engines(0)
        for data_class in ("", "restricted", "RESTRICTED", "confidential"):
            result = chat(host, gateway_address, data_class=data_class)
            assert_openai_error(result, 503, "no_engine_available")
        public = chat(host, gateway_address, data_class="public")
        assert public["status"] == 200, public
        assert public["json"]["stand_in"] == "cloud-api-stand-in"
    finally:
        STAND_INS.check_output("systemctl start engine-a-stand-in engine-b-stand-in")
    records = cloud_records()
    assert len(records) == before + 1
    # The cloud never saw a restricted request, nor the tenant id; it got its own key.
    assert all(record["data_class"] == "public" for record in records), records
    assert all(record["tenant_header"] is None for record in records)
    assert all(record["authorization"] for record in records)
    wait_for_engines(2)


def test_reload_keeps_server_states(host, gateway_address):
    socket = "unix-connect:/run/haproxy/admin.sock"
    GATEWAY.check_output(f"echo 'set server engines/engine-b state drain' | socat stdio {socket}")
    try:
        GATEWAY.check_output("systemctl reload haproxy")
        time.sleep(1)
        state = GATEWAY.check_output("cat /var/lib/haproxy/server-state")
        assert "engine-b" in state
        # Drain survives the reload: the new worker loaded it from the state file.
        stat = GATEWAY.check_output(f"echo 'show stat' | socat stdio {socket}")
        row = next(line for line in stat.splitlines() if line.startswith("engines,engine-b,"))
        assert row.split(",")[17] == "DRAIN", row
        assert chat(host, gateway_address)["status"] == 200
    finally:
        ready = "set server engines/engine-b state ready"
        GATEWAY.check_output(f"echo '{ready}' | socat stdio {socket}")


def test_config_haproxy_rejects_never_goes_live(host, gateway_address):
    before = GATEWAY.check_output("sha256sum /etc/haproxy/haproxy.cfg")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(SCENARIO_DIR / "broken_config.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Write the HAProxy configuration, checked with haproxy -c first" in output
    assert "failed to validate" in output
    assert GATEWAY.check_output("sha256sum /etc/haproxy/haproxy.cfg") == before
    assert chat(host, gateway_address)["status"] == 200
