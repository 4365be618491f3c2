"""Engines serve HTTPS with their host's certificate from the site's CA; the gateways verify it
(chain and name) and plain HTTP gets no answer; a renewed certificate goes live in the running
vLLM without a restart and without a failed request, twice in a row; a tap on the gateway sees
only TLS between it and the engines."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import testinfra
import tls_profile
from gateway_client import (
    CONTAINER,
    ENGINES,
    GATEWAYS,
    NATIVE,
    SCENARIO_DIR,
    SITE_CA,
    UNIT,
    address,
    chat,
    engines_up,
    run_playbook,
    wait_for_engines,
)

testinfra_hosts = ["ansible://serving-client"]


def name(engine):
    return engine.backend.host


def served_serial(engine):
    return engine.check_output(
        "openssl s_client -connect %s:8000 -CAfile %s </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial",
        address(engine),
        SITE_CA,
    )


def test_engines_serve_https_with_the_site_certificate_and_not_plain_http():
    for engine in ENGINES:
        handshake = engine.run(
            "openssl s_client -connect %s:8000 -CAfile %s -verify_hostname %s </dev/null",
            address(engine),
            SITE_CA,
            name(engine),
        )
        assert "Verify return code: 0 (ok)" in handshake.stdout, handshake.stdout
        plain = engine.run(
            "curl -s -m 5 -o /dev/null -w '%%{http_code}' http://%s:8000/health", address(engine)
        )
        assert plain.stdout in ("", "000"), plain.stdout
    # The native engines' key is readable by their user only through the engine's group.
    key = NATIVE[0].file("/etc/onprem-llm/engine-tls/server.key")
    assert (key.user, key.group, key.mode) == ("root", "onprem-llm-engine", 0o640)
    assert CONTAINER.file("/etc/onprem-llm/engine-tls/server.key").mode == 0o640


@pytest.mark.parametrize("engine", ENGINES, ids=name)
def test_engines_meet_mozillas_intermediate_profile(engine):
    # vLLM natively and the stand-in image in a container: the suites from --ssl-ciphers, the
    # groups from the OpenSSL settings in the instance's OPENSSL_CONF.
    endpoint = f"{address(engine)}:8000"
    assert tls_profile.violations(tls_profile.host_runner(engine), endpoint) == []


def test_the_gateways_verify_each_engine_by_its_name():
    for gateway in GATEWAYS:
        config = gateway.file("/etc/haproxy/haproxy.cfg").content_string
        for engine in ENGINES:
            assert (
                f"ssl verify required ca-file /etc/onprem-llm/pki/ca.crt verifyhost {name(engine)}"
            ) in config


def test_a_renewed_certificate_goes_live_without_restart_or_failed_request(host):
    wait_for_engines(3)
    engine = NATIVE[0]
    pid = engine.check_output(f"systemctl show -p MainPID --value {UNIT}")
    serials = [served_serial(engine)]
    results: list = []
    stop = threading.Event()

    def send():
        while not stop.is_set():
            results.append(chat(host, address(GATEWAYS[0]), max_tokens=2)["status"])

    sender = threading.Thread(target=send)
    sender.start()
    try:
        # Twice: vLLM must keep watching the files after the first renewal.
        for days, renew in ((400, 380), (500, 450)):
            output, ok, _unused = run_playbook(
                "renew_certificate.yml",
                "--limit",
                name(engine),
                "-e",
                f"pki_certificate_days={days} pki_renew_before_days={renew}",
            )
            assert ok, output
            deadline = time.monotonic() + 30
            while served_serial(engine) == serials[-1] and time.monotonic() < deadline:
                time.sleep(1)
            serials.append(served_serial(engine))
            assert serials[-1] != serials[-2], serials
    finally:
        stop.set()
        sender.join(timeout=120)
    assert engine.check_output(f"systemctl show -p MainPID --value {UNIT}") == pid
    assert results and set(results) == {200}, results
    # The gateways still verify the engine with its new certificate.
    for gateway in GATEWAYS:
        assert f"{name(engine)}-0" in engines_up(gateway)


def test_a_renewed_certificate_reaches_the_redis_exporters_terminator_without_a_restart():
    redis = testinfra.get_host("ansible://serving-redis1")
    unit = "onprem-llm-redis-exporter-tls"
    endpoint = f"{address(redis)}:9121"

    def served():
        return redis.check_output(
            "openssl s_client -connect %s -CAfile %s </dev/null 2>/dev/null"
            " | openssl x509 -noout -serial",
            endpoint,
            SITE_CA,
        )

    pid = redis.check_output(f"systemctl show -p MainPID --value {unit}")
    before = served()
    output, ok, _unused = run_playbook(
        "renew_certificate.yml",
        "--limit",
        "redis",
        "-e",
        "pki_certificate_days=400 pki_renew_before_days=380",
    )
    assert ok, output
    deadline = time.monotonic() + 30
    while served() == before and time.monotonic() < deadline:
        time.sleep(1)
    assert served() != before
    # Reloaded (SIGHUP), not restarted; the metrics still come through it.
    assert redis.check_output(f"systemctl show -p MainPID --value {unit}") == pid
    metrics = redis.check_output(f"curl -fsS --cacert {SITE_CA} https://{endpoint}/metrics")
    assert "redis_up 1" in metrics


def test_a_tap_between_the_gateway_and_the_engines_sees_no_prompt(host):
    # The gateway host's own capture of every interface: the engines' port carries TLS only;
    # on its loopback, HAProxy hands the same requests to the gateway service in plain HTTP,
    # where the capture does see the prompt (so a prompt in clear text would be seen).
    wait_for_engines(3)
    gateway = GATEWAYS[0]
    script = (SCENARIO_DIR / "clients" / "tcp_capture.py").read_text()
    gateway.check_output(f"cat > /tmp/tcp_capture.py <<'PY'\n{script}PY")
    marker = f"tap-marker-{os.urandom(8).hex()}"
    captured = {}

    def capture():
        out = gateway.check_output(f"python3 /tmp/tcp_capture.py 20 {marker} 8000 8480")
        captured.update(json.loads(out.splitlines()[-1]))

    tap = threading.Thread(target=capture)
    tap.start()
    time.sleep(4)
    for index in range(4):
        answer = chat(host, address(gateway), max_tokens=2, content=f"{marker} {index}")
        assert answer["status"] == 200, answer
    tap.join(timeout=60)
    engines, loopback = captured["8000"], captured["8480"]
    assert engines["bytes"] > 0 and engines["tls_records"] > 0, captured
    assert not engines["marker"], captured
    assert loopback["marker"], captured
