"""Requests from a client over HTTPS through the gateways to real vLLM engines (CPU build, tiny
model made by the tests), a container-mode engine (stand-in image loaded from an archive) and,
when every engine is down, the cloud API stand-in for public requests only.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time

import pytest
from gateway_client import (
    CLIENT_DIR,
    CONTAINER,
    ENGINE_SERVERS,
    ENGINES,
    GATEWAYS,
    KEY_A,
    KEY_LIMITED,
    MODEL,
    NATIVE,
    SCENARIO_DIR,
    SITE_CA,
    UNIT,
    address,
    assert_openai_error,
    call,
    chat,
    cloud_records,
    engines_up,
    run_playbook,
    start_engines,
    wait_for_engines,
)

testinfra_hosts = ["ansible://serving-client"]


@pytest.fixture(scope="module")
def gateway_addresses():
    return [address(gateway) for gateway in GATEWAYS]


@pytest.fixture(scope="module", autouse=True)
def engines_started_again():
    # The failover tests leave engines stopped for the next one; every engine runs again after.
    yield
    start_engines()


def test_every_engine_instance_is_behind_both_gateways():
    wait_for_engines(3)
    for gateway in GATEWAYS:
        assert engines_up(gateway) == ENGINE_SERVERS


def test_valid_key_gets_real_tokens_from_vllm(host, gateway_addresses):
    wait_for_engines(3)
    answers = []
    for gateway in gateway_addresses:
        for _unused in range(3):
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
    seen = {
        chat(host, gateway_addresses[0])["json"].get("stand_in", "vllm") for _unused in range(6)
    }
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


def test_crash_looping_instance_fails_the_run_early_with_its_journal():
    wait_for_engines(3)
    crash = '{"engine_container_extra_args": ["--no-such-flag"]}'
    try:
        output, succeeded, seconds = run_playbook("engine_crash_loop.yml", "-e", crash)
        assert not succeeded, output
        # Reported well before engine_health_timeout (600 s here), with the reason and the
        # engine's own words from its journal.
        assert "crash loop: restarted" in output, output
        assert "unknown flag: --no-such-flag" in output, output
        assert seconds < 180, (seconds, output)
    finally:
        restored, succeeded, _unused = run_playbook("engine_crash_loop.yml")
    assert succeeded, restored
    wait_for_engines(3)


def test_engine_flag_the_image_lacks_fails_before_any_unit_changes():
    # The stand-in image carries vLLM 0.32.0's argument list and refuses what it lacks, as vLLM
    # does; the role reads that list (docker run IMAGE --help=all) before writing any unit.
    wait_for_engines(3)
    dropin = "/etc/systemd/system/onprem-llm-engine@0.service.d/command.conf"
    before = CONTAINER.file(dropin).content_string
    typo = '{"engine_extra_args": ["--max-num-seqz", "64"]}'
    output, succeeded, seconds = run_playbook("engine_crash_loop.yml", "-e", typo)
    assert not succeeded, output
    assert (
        "vLLM localhost/onprem-llm-stand-in-engine:serving does not accept --max-num-seqz "
        "(asked for by engine_extra_args)"
    ) in " ".join(output.split()), output
    assert CONTAINER.file(dropin).content_string == before
    assert seconds < 120, (seconds, output)
    wait_for_engines(3)


@pytest.mark.parametrize(
    ("engine_type", "label", "image"),
    [
        ("trtllm", "trtllm-serve", "localhost/onprem-llm-stand-in-engine:serving"),
        ("tgi", "TGI", "localhost/onprem-llm-stand-in-engine:serving-tgi"),
    ],
)
def test_trtllm_and_tgi_accept_the_roles_flags_and_refuse_vllms(engine_type, label, image):
    # The stand-in image takes trtllm-serve's options as `IMAGE trtllm-serve serve MODEL`, and
    # its -tgi tag TGI's launcher options; each refuses a vLLM option as that engine does.
    dropin = "/etc/systemd/system/onprem-llm-engine@0.service.d/command.conf"
    before = CONTAINER.file(dropin).content_string
    settings = {
        "engine_type": engine_type,
        # Neither has TLS options (the role refuses engine_tls for them): clear text, named.
        "engine_tls": False,
        "onprem_llm_plaintext_links": ["engines"],
        "engine_container_image": image,
        "engine_extra_args": ["--max-num-seqs", "8"],
    }
    output, succeeded, _unused = run_playbook("engine_crash_loop.yml", "-e", json.dumps(settings))
    assert not succeeded, output
    text = " ".join(output.split())
    # Only the foreign flag is named: the role's own flags for this engine are in its list.
    refused = "--max-num-seqs (asked for by engine_extra_args): it is not in"
    assert f"{label} {image} does not accept {refused}" in text, output
    assert CONTAINER.file(dropin).content_string == before


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
        arguments = engine.check_output(f"tr '\\0' '\\n' < /proc/{unit}/cmdline").splitlines()
        assert '{"repetition_penalty": 1.0}' in arguments, arguments
        version = engine.check_output(
            "/opt/onprem-llm/engine/venv/bin/python -c "
            "'import importlib.metadata as m; print(m.version(\"vllm-cpu\"))'"
        )
        assert version == "0.32.0"
        # Bound to the internal address only, not to loopback.
        assert engine.run("curl -sk -m 3 https://127.0.0.1:8000/health").rc != 0


def test_real_vllm_metrics_carry_every_metric_the_rules_use():
    # The check of tests/unit/test_monitoring_engine_metrics.py, against the real vLLM.
    path = SCENARIO_DIR.parents[1] / "tests" / "harness" / "engine_metrics.py"
    spec = importlib.util.spec_from_file_location("engine_metrics", path)
    assert spec and spec.loader
    engine_metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine_metrics)
    wait_for_engines(3)
    for engine in NATIVE:
        base = f"--cacert {SITE_CA} https://{address(engine)}:8000"
        # HTTP counters appear with the first API request (health checks are not counted).
        engine.check_output(f"curl -sf -m 10 -o /dev/null {base}/v1/models")
        text = engine.check_output(f"curl -s -m 10 {base}/metrics")
        problems = engine_metrics.missing_metrics(text)
        # vllm:gpu_cache_usage_perc is the older name, kept in the rules as a fallback.
        assert problems == ["vllm:gpu_cache_usage_perc: not a gauge with samples"], problems


@pytest.mark.parametrize("key", ["", "sk-test-wrong-0123456789abcdef0123456789"])
def test_missing_or_wrong_key_gets_openai_401(host, gateway_addresses, key):
    assert_openai_error(chat(host, gateway_addresses[0], key=key), 401, "invalid_api_key")


def test_over_the_per_key_limit_gets_openai_429(host, gateway_addresses):
    results = [
        chat(host, gateway_addresses[1], key=KEY_LIMITED, max_tokens=2) for _unused in range(5)
    ]
    statuses = [result["status"] for result in results]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[-1] == 429, statuses
    assert_openai_error(results[-1], 429, "rate_limit_exceeded")
    assert results[-1]["retry_after"] == "60"
    # Another key is not affected.
    assert chat(host, gateway_addresses[1], max_tokens=2)["status"] == 200


@pytest.mark.parametrize("path", ["/metrics", "/tokenize", "/detokenize", "/server_info"])
def test_engine_internals_are_not_served(host, gateway_addresses, path):
    body = json.dumps({"model": MODEL, "prompt": "hello"})
    for gateway in gateway_addresses:
        result = call(host, gateway, path, body=body)
        assert result["status"] == 403, result
        assert "vllm:" not in result["body"] and "tokens" not in result["body"]
    # vLLM does serve them, so the gateway is what refuses.
    engine = NATIVE[0]
    metrics = engine.check_output(
        f"curl -s --cacert {SITE_CA} https://{address(engine)}:8000/metrics"
    )
    assert "vllm:num_requests_waiting" in metrics


def test_stopping_one_engine_loses_no_request(host, gateway_addresses):
    wait_for_engines(3)
    # With engines up even public requests stay on site.
    public = chat(host, gateway_addresses[0], data_class="public", max_tokens=2)
    assert public["json"].get("stand_in") != "cloud-api-stand-in", public
    outcome = {}

    def run_requests():
        outcome["lines"] = host.check_output(
            f"python3 {CLIENT_DIR}/sequential.py "
            f"https://{gateway_addresses[0]}/v1/chat/completions {KEY_A} 40 {MODEL}"
        ).splitlines()

    worker = threading.Thread(target=run_requests)
    worker.start()
    time.sleep(2)
    # Stopped with requests in flight: vLLM drains them, the gateway retries what it refuses.
    NATIVE[0].check_output(f"systemctl stop {UNIT}")
    worker.join(timeout=300)
    lines = outcome["lines"]
    assert len(lines) == 40
    failed = [(number, line) for number, line in enumerate(lines) if not line.startswith("200 ")]
    assert not failed, failed
    wait_for_engines(2, timeout=60)
    # Left stopped: the next test stops the others and starts them all once (vLLM starts slowly).


def test_every_engine_down_restricted_gets_503_public_goes_to_cloud(host, gateway_addresses):
    before = len(cloud_records())
    try:
        for engine in ENGINES:
            engine.check_output(f"systemctl stop {UNIT}")
        wait_for_engines(0, timeout=60)
        # internal may reach only eu-test, and the stand-in provider is in us-test.
        for data_class in ("", "restricted", "RESTRICTED", "internal"):
            result = chat(host, gateway_addresses[0], data_class=data_class)
            assert_openai_error(result, 503, "no_engine_available")
        public = chat(host, gateway_addresses[1], data_class="public")
        assert public["status"] == 200, public
        assert public["json"]["stand_in"] == "cloud-api-stand-in"
        assert public["route"] == "cloud:cloud-stand-in", public
    finally:
        start_engines()
    records = cloud_records()
    # Only the public request reached the cloud, with the cloud's key, not the tenant's.
    assert len(records) == before + 1, records
    assert all(record["data_class"] == "public" for record in records), records
    assert all(record["tenant_header"] is None for record in records)
    # The stand-in answers only with the cloud key, so an answer means the gateway sent it.
    assert all(record["authorization"] for record in records)
