"""HAProxy itself, seen from the client and on the gateways: access log, TLS versions and h2,
the internal listener, keys stored as hashes, reloads that keep drain states, and a
configuration HAProxy rejects never going live.
"""

from __future__ import annotations

import json
import os
import re

import pytest
import testinfra
import tls_profile
from gateway_client import (
    ADMIN,
    BACKEND,
    CA,
    CLIENT_DIR,
    CLOUD_KEY,
    ENGINE_SERVERS,
    GATEWAYS,
    KEY_A,
    KEY_LIMITED,
    MODEL,
    SCENARIO_DIR,
    SERVICE_METRICS,
    SITE_CA,
    address,
    assert_openai_error,
    call,
    chat,
    run_playbook,
    server_states,
    set_server_state,
    wait_for_engines,
)
from scenario_playbooks import assert_check_mode_changes_nothing, recap_lines

testinfra_hosts = ["ansible://serving-client"]

REDIS_HOSTS = [testinfra.get_host(f"ansible://serving-redis{i}") for i in (1, 2, 3)]
GATEWAY = GATEWAYS[0]


@pytest.fixture(scope="module")
def gateway_address():
    return address(GATEWAY)


def test_access_log_has_tenant_and_model_but_no_prompt(host, gateway_address):
    marker = f"prompt-text-{os.urandom(8).hex()}"
    shown = GATEWAY.check_output("journalctl -u haproxy -n 0 --show-cursor --no-pager")
    cursor = shown.split("cursor: ")[-1].strip()
    result = chat(host, gateway_address, max_tokens=2, content=marker)
    assert result["status"] == 200, result
    entries, journal = [], ""
    for _unused in range(20):
        journal = GATEWAY.check_output(
            f"journalctl -u haproxy --no-pager -o cat --after-cursor '{cursor}'"
        )
        entries = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
        if entries:
            break
        GATEWAY.check_output("sleep 0.5")
    assert len(entries) == 1, journal[-2000:]
    entry = entries[0]
    assert entry["tenant"] == "team-a"
    assert entry["model"] == MODEL
    assert entry["status"] == 200
    assert entry["path"] == "/v1/chat/completions"
    assert entry["data_class"] == "restricted"
    # Through the gateway service (not a deterministic request: no cache), answered by an engine.
    assert entry["backend"] == "gateway_service"
    assert entry["server"] == "gateway_service"
    assert entry["engine"] in ENGINE_SERVERS
    assert entry["bytes_out"] > 0 and entry["t_total_ms"] >= 0
    assert marker not in journal
    # The client, HAProxy's log and the gateway service's request audit share one request id.
    assert entry["request_id"] == result["request_id"] and len(result["request_id"]) == 36
    record = audit_record(GATEWAY, result["request_id"])
    assert (record["tenant"], record["model"], record["data_class"]) == (
        "team-a",
        MODEL,
        "restricted",
    )
    assert (record["route"], record["cache"], record["status"]) == ("on-prem", "bypass", 200)
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert len(record["key_id"]) == 16 and "request" not in record
    assert marker not in GATEWAY.check_output(f"cat {AUDIT_FILE}")


AUDIT_FILE = "/var/log/onprem-llm/requests.jsonl"
CONTENT_FILE = "/var/log/onprem-llm/content.jsonl"
KEY_C = "sk-test-team-c-0123456789abcdef0123456789"


def audit_record(gateway, request_id, path=AUDIT_FILE):
    for _unused in range(20):
        lines = gateway.run(f'grep -F \'"request_id":"{request_id}"\' {path}').stdout
        if lines.strip():
            [line] = lines.splitlines()
            return json.loads(line)
        gateway.check_output("sleep 0.2")
    raise AssertionError(f"no request record {request_id} in {path}")


def test_an_opted_in_tenants_text_is_kept_with_personal_data_redacted(host, gateway_address):
    marker = f"content-{os.urandom(8).hex()}"
    content = f"{marker}: reach me at jane.doe@example.org or +44 20 7946 0958"
    result = chat(host, gateway_address, key=KEY_C, max_tokens=2, content=content)
    assert result["status"] == 200, result
    record = audit_record(GATEWAY, result["request_id"])
    assert (record["tenant"], record["content"]) == ("team-c", True) and "request" not in record
    # The text is in the content file, which has its own (shorter) retention.
    kept = audit_record(GATEWAY, result["request_id"], CONTENT_FILE)
    assert kept["tenant"] == "team-c"
    assert kept["request"] == [
        {"role": "user", "text": f"{marker}: reach me at [email] or [phone]"}
    ]
    assert kept["answer"] == [result["json"]["choices"][0]["message"]["content"]]
    # The files hold random hex ids and durations, so they are searched for the whole number
    # only, and the kept question (not the ids, not the model's answer) for any of its digits.
    text = GATEWAY.check_output(f"cat {AUDIT_FILE} {CONTENT_FILE}")
    assert "jane.doe" not in text and "7946 0958" not in text
    asked = json.dumps(kept["request"])
    assert "7946" not in asked and "jane" not in asked
    assert marker not in GATEWAY.check_output(f"cat {AUDIT_FILE}")
    for path in (AUDIT_FILE, CONTENT_FILE):
        mode = GATEWAY.check_output(f"stat -c '%a %U' {path}")
        assert mode == "600 onprem-llm-gateway", (path, mode)
    rotation = GATEWAY.check_output("cat /etc/logrotate.d/onprem-llm-gateway")
    assert f"{CONTENT_FILE} {{" in rotation and "maxage 30" in rotation, rotation


def test_unknown_path_gets_404_json(host, gateway_address):
    assert_openai_error(call(host, gateway_address, "/v1/unknown"), 404, "not_found")


def test_http2_is_negotiated(host, gateway_address):
    assert host.check_output(
        f"python3 {CLIENT_DIR}/tls_handshake.py {gateway_address} TLSv1_2"
    ).endswith("h2")
    version = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_version}}' --cacert {CA} "
        f"-H 'Authorization: Bearer {KEY_A}' https://{gateway_address}/v1/models"
    )
    assert version == "2"


def test_tls_1_1_is_refused_by_the_gateway(host, gateway_address):
    outcome = host.check_output(f"python3 {CLIENT_DIR}/tls_handshake.py {gateway_address} TLSv1_1")
    # The server answers with a protocol_version alert: the refusal is the gateway's.
    assert outcome.startswith("refused"), outcome
    assert "PROTOCOL_VERSION" in outcome.upper(), outcome
    assert host.check_output(
        f"python3 {CLIENT_DIR}/tls_handshake.py {gateway_address} TLSv1_3"
    ).startswith("accepted TLSv1.3")


def gateway_records(gateway, path=AUDIT_FILE):
    text = gateway.run(f"cat {path}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_erasing_a_user_removes_its_records_and_text_and_keeps_the_others(host, gateway_address):
    erased, kept = f"u-erase-{os.urandom(4).hex()}", f"u-keep-{os.urandom(4).hex()}"
    ids = {}
    for user in (erased, kept, erased):
        result = chat(host, gateway_address, key=KEY_C, max_tokens=2, user=user)
        assert result["status"] == 200, result
        ids.setdefault(user, []).append(result["request_id"])
    for request_id in ids[erased] + ids[kept]:
        audit_record(GATEWAY, request_id, CONTENT_FILE)  # written before the erasure starts
    output, ok, _unused = run_playbook(
        "../../playbooks/erase_tenant.yml",
        "-e",
        "erase_tenant=team-c",
        "-e",
        f"erase_user={erased}",
    )
    assert ok, output[-3000:]
    for path in (AUDIT_FILE, CONTENT_FILE):
        left = {record.get("request_id") for record in gateway_records(GATEWAY, path)}
        assert not left & set(ids[erased]), path
        assert set(ids[kept]) <= left, path
    event = gateway_records(GATEWAY)[-1]
    assert (event["event"], event["scope"], event["tenant"]) == ("erasure", "user", "team-c")
    assert (event["records_removed"], event["content_removed"]) == (2, 2)
    # The user's identifier is nowhere: records carry its pseudonym only, and the erasure neither.
    assert erased not in GATEWAY.check_output(f"cat {AUDIT_FILE} {CONTENT_FILE}")


def test_erasing_a_tenant_removes_its_records_on_every_gateway(host, gateway_address):
    def of_team_c(record):
        return record.get("tenant") == "team-c" and "event" not in record

    assert chat(host, gateway_address, key=KEY_C, max_tokens=2)["status"] == 200
    assert chat(host, gateway_address, max_tokens=2)["status"] == 200
    before = {gateway: gateway_records(gateway) for gateway in GATEWAYS}
    assert any(of_team_c(record) for record in before[GATEWAY])
    output, ok, _unused = run_playbook(
        "../../playbooks/erase_tenant.yml", "-e", "erase_tenant=team-c"
    )
    assert ok, output[-3000:]
    for gateway in GATEWAYS:
        after = gateway_records(gateway)
        kept = [record for record in before[gateway] if not of_team_c(record)]
        # Every other record stays, in order, followed by the record of this erasure.
        assert after[: len(kept)] == kept
        [event] = after[len(kept) :]
        assert (event["event"], event["tenant"]) == ("erasure", "team-c")
        assert event["records_removed"] == len(before[gateway]) - len(kept)


OPENSSL = (
    "echo | timeout 10 openssl s_client -connect {address}:443 -servername {address} "
    "-CAfile /etc/onprem-llm-test-ca.crt -verify_return_error {args} 2>&1"
)


@pytest.mark.parametrize(
    ("version", "group", "accepted"),
    [
        ("-tls1_3", "X25519", True),
        ("-tls1_3", "P-256", True),
        ("-tls1_3", "P-384", True),
        ("-tls1_3", "X448", False),
        ("-tls1_3", "P-521", False),
        # TLS 1.2 ties the groups to the certificate's curve (P-384): offered with it, the key
        # exchange must still be X25519 or P-256, never X448 or P-521.
        ("-tls1_2", "X25519:P-384", "X25519"),
        ("-tls1_2", "P-256:P-384", "P-256"),
        ("-tls1_2", "X448:P-521:P-384", "P-384"),
    ],
)
def test_only_the_intermediate_profiles_groups_are_accepted(
    host, gateway_address, version, group, accepted
):
    """Mozilla intermediate: X25519, P-256 and P-384 only (OpenSSL offers X448 and P-521)."""
    out = host.run(
        OPENSSL.format(address=gateway_address, args=f"{version} -groups {group} -brief")
    ).stdout
    assert ("CONNECTION ESTABLISHED" in out) is bool(accepted), out
    if accepted:
        assert "Verification: OK" in out, out
    if isinstance(accepted, str):
        # "X25519, 253 bits" or "ECDH, prime256v1, 256 bits"
        temp = re.search(r"(?:Server|Peer) Temp Key: (?:ECDH, )?([^,]+)", out)
        names = {"prime256v1": "P-256", "secp384r1": "P-384"}
        assert temp and names.get(temp.group(1), temp.group(1)) == accepted, out


def test_the_chain_is_the_leaf_alone_and_answers_carry_hsts_and_a_request_id(host, gateway_address):
    shown = host.run(OPENSSL.format(address=gateway_address, args="-showcerts")).stdout
    assert shown.count("-----BEGIN CERTIFICATE-----") == 1, shown
    headers = host.check_output(
        "curl -sS -o /dev/null -D - --cacert /etc/onprem-llm-test-ca.crt "
        f"-H 'Authorization: Bearer {KEY_A}' https://{gateway_address}/v1/models"
    ).lower()
    assert "strict-transport-security: max-age=63072000" in headers, headers
    assert re.search(r"^x-request-id: [0-9a-f-]{36}\r?$", headers, re.M), headers
    # No engine or proxy software named to clients, on answers and on errors.
    assert not re.search(r"^server:", headers, re.M), headers
    result = chat(host, gateway_address, max_tokens=2)
    assert result["status"] == 200 and len(result["request_id"]) == 36, result


def test_exporter_and_stats_only_on_the_internal_listener(host, gateway_address):
    wait_for_engines(len(ENGINE_SERVERS))
    internal = f"--cacert {SITE_CA} https://127.0.0.1:8405"
    metrics = GATEWAY.check_output(f"curl -sf {internal}/metrics")
    assert f'haproxy_backend_active_servers{{proxy="{BACKEND}"}} {len(ENGINE_SERVERS)}' in metrics
    stats = f"curl -s -o /dev/null -w '%{{http_code}}' {internal}/stats"
    assert GATEWAY.check_output(stats) == "200"
    # Only over TLS.
    plain = "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8405/metrics"
    assert GATEWAY.run(plain).stdout != "200"
    # Not from other networks.
    status = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {CA} "
        f"https://{gateway_address}:8405/metrics"
    )
    assert status == "403"


@pytest.mark.parametrize("port", [443, 8405, 8081])
def test_gateway_endpoints_meet_mozillas_intermediate_profile(port):
    # The public API, HAProxy's internal listener and the gateway service's metrics.
    assert tls_profile.violations(tls_profile.host_runner(GATEWAY), f"127.0.0.1:{port}") == []


@pytest.mark.parametrize("port", [6379, 26379, 9121])
def test_redis_sentinel_and_exporter_meet_mozillas_intermediate_profile(port):
    # Redis' and Sentinel's suites and groups come from OpenSSL's configuration (OPENSSL_CONF in
    # their units); the exporter's from its TLS terminator (stunnel), with the same profile.
    redis = REDIS_HOSTS[0]
    endpoint = f"{address(redis)}:{port}"
    assert tls_profile.violations(tls_profile.host_runner(redis), endpoint) == []


def test_metrics_of_the_gateway_service_and_redis_only_over_tls():
    def plain_http(host, listener):
        return host.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{listener}/metrics")

    for gateway in GATEWAYS:
        assert "onprem_llm_gateway_requests_total" in gateway.check_output(SERVICE_METRICS)
        assert plain_http(gateway, "127.0.0.1:8081").stdout != "200"
    for redis in REDIS_HOSTS:
        exporter = f"{address(redis)}:9121"
        metrics = redis.check_output(f"curl -fsS --cacert {SITE_CA} https://{exporter}/metrics")
        assert re.search(r"(?m)^redis_up 1$", metrics)
        assert plain_http(redis, exporter).stdout != "200"
        # Behind its TLS terminator the exporter itself listens on loopback only.
        assert redis.socket("tcp://127.0.0.1:9122").is_listening
        assert not redis.socket("tcp://0.0.0.0:9122").is_listening


def test_keys_are_stored_only_as_hashes():
    for gateway in GATEWAYS:
        config = gateway.check_output("cat /etc/haproxy/haproxy.cfg /etc/haproxy/maps/api_keys.map")
        assert KEY_A not in config and KEY_LIMITED not in config
        assert " team-a" in gateway.check_output("cat /etc/haproxy/maps/api_keys.map")
        assert CLOUD_KEY not in gateway.check_output("cat /etc/haproxy/haproxy.cfg")
        assert gateway.file("/etc/haproxy/maps/upstream_keys.map").mode == 0o600
        assert gateway.file("/etc/haproxy/haproxy.cfg").contains("Ansible managed")


def test_reload_keeps_server_states(host, gateway_address):
    server = "serving-engine2-0"
    set_server_state(GATEWAY, server, "drain")
    try:
        GATEWAY.check_output("systemctl reload haproxy")
        GATEWAY.check_output("sleep 1")
        assert server in GATEWAY.check_output("cat /var/lib/haproxy/server-state")
        # Drain survives the reload: the new worker loaded it from the state file.
        assert server_states(GATEWAY)[server] == "DRAIN"
        assert chat(host, gateway_address, max_tokens=2)["status"] == 200
    finally:
        set_server_state(GATEWAY, server, "ready")


def worker_pid(gateway):
    info = gateway.check_output(f"echo 'show info' | socat stdio {ADMIN}")
    return next(
        line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Pid:")
    )


def test_restart_brings_back_the_live_states_not_older_ones():
    # On the backup gateway, so that the VIP stays where it is.
    gateway, server = GATEWAYS[1], "serving-engine1-0"
    set_server_state(gateway, server, "drain")
    try:
        worker = worker_pid(gateway)
        gateway.check_output("systemctl reload haproxy")
        # Until the new worker takes the runtime API over, commands reach the old one.
        for _unused in range(50):
            if worker_pid(gateway) != worker:
                break
            gateway.check_output("sleep 0.2")
    finally:
        set_server_state(gateway, server, "ready")
    assert server_states(gateway)[server].startswith("UP"), server_states(gateway)
    # The state file still says DRAIN; the stop saves the live state before the start loads it.
    gateway.check_output("systemctl restart haproxy")
    gateway.check_output("sleep 2")
    assert server_states(gateway)[server].startswith("UP"), server_states(gateway)


def test_config_haproxy_rejects_never_goes_live(host, gateway_address):
    before = [gateway.check_output("sha256sum /etc/haproxy/haproxy.cfg") for gateway in GATEWAYS]
    output, succeeded, _unused = run_playbook("broken_config.yml")
    assert not succeeded, output
    assert "Write the HAProxy configuration, checked with haproxy -c first" in output
    assert "failed to validate" in output
    after = [gateway.check_output("sha256sum /etc/haproxy/haproxy.cfg") for gateway in GATEWAYS]
    assert after == before
    assert chat(host, gateway_address, max_tokens=2)["status"] == 200


def test_a_run_limited_to_the_gateways_changes_nothing():
    """Every host computes the same placement: the gateways run alone (no engine or Redis host in
    the run, none of their facts) write the same backends, routing maps and service settings."""
    files = "/etc/haproxy/haproxy.cfg /etc/haproxy/maps/*.map /etc/onprem-llm/gateway/*.json"
    before = {gateway: gateway.check_output(f"sha256sum {files}") for gateway in GATEWAYS}
    output, ok, _unused = run_playbook("converge.yml", "--limit", "gateways")
    assert ok, output[-4000:]
    # Coloured when the environment forces colour (molecule does when TERM is set).
    recaps = list(recap_lines(output, ["serving-gw1", "serving-gw2"]).values())
    assert len(recaps) == 2 and all(" changed=0 " in line for line in recaps), recaps
    assert {gateway: gateway.check_output(f"sha256sum {files}") for gateway in GATEWAYS} == before


SERVING_HOSTS = [
    *(f"serving-gw{i}" for i in (1, 2)),
    *(f"serving-engine{i}" for i in (1, 2, 3, 4)),
    *(f"serving-redis{i}" for i in (1, 2, 3)),
    "serving-cloud",
    "serving-client",
]


def test_check_mode_on_the_converged_site_reports_no_change():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, SERVING_HOSTS)
    print(f"check mode on {len(SERVING_HOSTS)} converged hosts: {seconds:.0f} s")
