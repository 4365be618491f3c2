"""Prometheus on the monitoring host scrapes the GPU node's exporters, records the llm:* series
and fires alerts when an exporter stops; Alertmanager delivers them to the webhook."""

import json
import os
import re
import time
from pathlib import Path

import pytest
import testinfra
from scenario_playbooks import assert_check_mode_changes_nothing, run_playbook
from unit_sandbox import assert_sandboxed

testinfra_hosts = ["ansible://monitoring-1"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]

GPU_NODE = testinfra.get_host("ansible://gpu-1")
VERIFY_JOURNALS = SCENARIO_DIR.parents[1] / "playbooks" / "verify_journals.yml"


# Prometheus serves its API over TLS with sign-in (the scenario's prometheus_web_users).
PROMETHEUS_API = "https://127.0.0.1:9090/api/v1"
CURL = "curl -sf --cacert /etc/onprem-llm/pki/ca.crt -u operator:monitoring-test-operator-password"


def api(host, path):
    return json.loads(host.check_output(f"{CURL} '{PROMETHEUS_API}/{path}'"))["data"]


def query(host, expr):
    reply = host.check_output(
        f"{CURL} -G {PROMETHEUS_API}/query --data-urlencode %s",
        "query=" + expr,
    )
    return json.loads(reply)["data"]["result"]


def wait_for(check, timeout=90, interval=2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def firing(host):
    return {
        (alert["labels"]["alertname"], alert["labels"].get("host"), alert["labels"].get("job"))
        for alert in api(host, "alerts")["alerts"]
        if alert["state"] == "firing"
    }


DATA_VOLUMES = [
    ("/var/lib/prometheus/metrics2", "prometheus-disk", "xfs", "prometheus"),
    ("/var/log/remote", "logs-disk", "ext4", "root"),
]


@pytest.fixture(scope="module", autouse=True)
def _release_the_loop_devices():
    # Loop devices belong to the machine's kernel. Detached while mounted, each goes once the
    # test host (and its mount) is gone.
    yield
    monitoring = testinfra.get_host("ansible://monitoring-1")
    for _path, disk, _fstype, _owner in DATA_VOLUMES:
        monitoring.run(f"losetup -d $(readlink -f /dev/disk/by-id/onprem-llm-test-{disk})")


@pytest.mark.parametrize(("path", "disk", "fstype", "owner"), DATA_VOLUMES)
def test_the_database_and_the_shipped_logs_live_on_devices_of_their_own(
    host, path, disk, fstype, owner
):
    device = host.check_output(f"readlink -f /dev/disk/by-id/onprem-llm-test-{disk}")
    mounted = host.check_output("findmnt -n -o SOURCE,FSTYPE --mountpoint %s", path).split()
    assert mounted == [device, fstype]
    uuid = host.check_output("blkid -s UUID -o value %s", device)
    fstab = host.file("/etc/fstab").content_string
    assert f"UUID={uuid} {path} {fstype} defaults,noatime" in fstab
    assert host.file(path).user == owner


def test_prometheus_writes_its_database_on_its_device(host):
    # The write-ahead log and the lock of the running server, on the mounted filesystem.
    path = DATA_VOLUMES[0][0]
    assert host.file(f"{path}/wal").is_directory
    on = host.check_output("df --output=source %s/wal | tail -1", path)
    assert on == host.check_output("findmnt -n -o SOURCE --mountpoint %s", path)


def test_check_mode_on_the_converged_hosts_changes_nothing():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, ["monitoring-1", "gpu-1"])
    print(f"check mode on the converged hosts: {seconds:.0f} s")


def test_configuration_is_managed_and_valid(host):
    assert host.file("/etc/prometheus/prometheus.yml").contains("Ansible managed")
    assert host.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0
    args = host.file("/etc/default/prometheus").content_string
    assert "--storage.tsdb.retention.time=30d" in args
    for service in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        assert host.service(service).is_running
        assert host.service(service).is_enabled


@pytest.mark.parametrize(
    "unit",
    [
        "prometheus.service",
        "prometheus-alertmanager.service",
        "prometheus-node-exporter.service",
        "rsyslog.service",
    ],
)
def test_monitoring_services_are_sandboxed(host, unit):
    assert host.service(unit).is_running
    assert_sandboxed(host, unit)


@pytest.mark.parametrize(
    "unit",
    [
        "prometheus-node-exporter.service",
        "onprem-llm-certificate-expiry.service",
        "rsyslog.service",
    ],
)
def test_gpu_node_exporters_are_sandboxed(unit):
    assert_sandboxed(GPU_NODE, unit)


def test_every_target_is_up(host):
    def targets():
        active = api(host, "targets?state=active")["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = wait_for(targets)
    assert active, api(host, "targets?state=active")["activeTargets"]
    jobs = {t["labels"]["job"] for t in active}
    assert jobs == {"prometheus", "alertmanager", "node", "dcgm", "engine_vllm"}
    engine = next(t for t in active if t["labels"]["job"] == "engine_vllm")
    assert engine["labels"]["model"] == "tiny-llama"
    assert engine["labels"]["rack"] == "rack-a"
    assert engine["scrapeUrl"].endswith(":8000/metrics")
    gpu_node = next(
        t for t in active if t["labels"]["job"] == "node" and t["labels"]["host"] == "gpu-1"
    )
    assert gpu_node["labels"]["gpu_node"] == "true"


@pytest.mark.parametrize(
    "series",
    [
        "llm:requests:rate5m",
        "llm:request_error_ratio:rate5m",
        "llm:e2e_latency_seconds:p50",
        "llm:e2e_latency_seconds:p95",
        "llm:e2e_latency_seconds:p99",
        "llm:ttft_seconds:p50",
        "llm:ttft_seconds:p95",
        "llm:generation_tokens:rate5m",
        "llm:queue_depth",
        "llm:kv_cache_usage:ratio",
        "llm:gpu_utilization:ratio",
        "llm:gpu_memory_used:ratio",
        "llm:model:e2e_latency_seconds:p99",
        "llm:site:requests:rate5m",
        "llm:site:gpu_utilization:avg",
    ],
)
def test_recording_rules_produce_series(host, series):
    result = wait_for(lambda: query(host, series), timeout=60)
    assert result, f"{series} has no series"
    labels = result[0]["metric"]
    assert labels["site"] == "molecule"
    if not series.startswith("llm:site:"):
        assert labels.get("model", "tiny-llama") == "tiny-llama"
        assert labels.get("host", "gpu-1") == "gpu-1"


def test_recorded_values_follow_the_engine(host):
    # The stand-in's requests grow steadily, its queue holds one request, two GPUs at 87% and 64%.
    assert float(wait_for(lambda: query(host, "llm:requests:rate5m > 0"))[0]["value"][1]) > 0
    assert float(query(host, "llm:queue_depth")[0]["value"][1]) == 1
    utilisation = {
        r["metric"]["gpu"]: float(r["value"][1]) for r in query(host, "llm:gpu_utilization:ratio")
    }
    assert utilisation == {"0": 0.87, "1": 0.64}


def test_expiring_certificate_fires_its_alert(host):
    assert wait_for(lambda: ("CertificateExpiringSoon", "gpu-1", None) in firing(host))
    assert ("CertificateExpiringSoon", "monitoring-1", None) in firing(host)
    expiry = query(host, 'onprem_llm_certificate_expiry_timestamp_seconds{host="gpu-1"} - time()')
    assert 2 * 86400 < float(expiry[0]["value"][1]) <= 3 * 86400


def test_no_health_alert_fires_while_all_is_well(host):
    names = {name for name, _unused, _unused in firing(host)}
    assert not names & {"TargetDown", "GpuNodeWithoutDcgmExporter", "GpuXidError"}


def test_stopped_dcgm_exporter_fires_its_alerts_and_notifies(host):
    GPU_NODE.check_output("systemctl stop dcgm-exporter-stand-in")
    try:
        assert wait_for(lambda: ("GpuNodeWithoutDcgmExporter", "gpu-1", None) in firing(host))
        assert ("TargetDown", "gpu-1", "dcgm") in firing(host)

        def delivered():
            posts = host.run("cat /var/lib/alert-webhook-stand-in/*.json").stdout
            return "GpuNodeWithoutDcgmExporter" in posts

        assert wait_for(delivered, timeout=60)
    finally:
        GPU_NODE.check_output("systemctl start dcgm-exporter-stand-in")


def journal_dir(node):
    return "/var/log/journal/" + node.check_output("cat /etc/machine-id").strip()


@pytest.mark.parametrize("name", ["monitoring-1", "gpu-1"])
def test_journal_is_sealed_and_its_verification_key_is_only_on_the_controller(name):
    node = testinfra.get_host(f"ansible://{name}")
    assert node.file(journal_dir(node) + "/fss").exists
    key_file = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "journal-keys" / f"{name}.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{6}(-[0-9a-f]{6}){3}/[0-9a-f]+-[0-9a-f]+", key), key
    # Not left on the host: not in a file, not in the journal (the task hides its output).
    assert node.run("grep -rqsF %s /etc /root /tmp /var/log /var/lib", key).rc == 1
    settings = node.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "Storage=persistent" in settings and "Seal=yes" in settings
    assert "MaxRetentionSec=90day" in settings


def verified(host, metric):
    result = query(host, f'{metric}{{host="gpu-1"}}')
    return float(result[0]["value"][1]) if result else None


def test_a_changed_journal_entry_fails_the_verification_and_names_the_host(host):
    output, ok, _unused = run_playbook(VERIFY_JOURNALS)
    assert ok, output
    assert re.search(r"gpu-1: \d+ archived journal files verified with the host's key", output)
    # An entry changed on the host after it was sealed: one byte of its message.
    marker = f"onprem-llm-audit-marker-{time.time_ns()}"
    GPU_NODE.check_output("logger -t onprem-llm-test %s && journalctl --sync --rotate", marker)
    directory = journal_dir(GPU_NODE)
    [changed] = GPU_NODE.check_output("grep -lF %s %s/*@*.journal", marker, directory).split()
    GPU_NODE.check_output(
        "python3 -c %s %s %s",
        "import sys; p, m = sys.argv[1], sys.argv[2].encode(); d = open(p, 'rb').read(); "
        "open(p, 'r+b').write(d.replace(m, m[:-1] + b'X'))",
        changed,
        marker,
    )
    try:
        output, ok, _unused = run_playbook(VERIFY_JOURNALS)
        assert not ok, output
        assert "gpu-1: the sealed journal failed verification" in output, output
        assert Path(changed).name in output, output
        assert "monitoring-1: " in output and "verified with the host's key" in output
        # The result reaches Prometheus through the host's textfile collector, and alerts.
        failed = "onprem_llm_journal_verify_failed_files"
        assert wait_for(lambda: (verified(host, failed) or 0) >= 1, timeout=30)
        assert wait_for(lambda: ("JournalVerificationFailed", "gpu-1", None) in firing(host))
    finally:
        # Sealing does not detect a deleted file: the verification passes again without it.
        GPU_NODE.check_output("rm -f %s", changed)
    output, ok, _unused = run_playbook(VERIFY_JOURNALS)
    assert ok, output
    assert wait_for(lambda: verified(host, failed) == 0, timeout=30)
    stamp = verified(host, "onprem_llm_journal_verify_timestamp_seconds")
    assert abs(stamp - time.time()) < 120, stamp


REMOTE_LOGS = "/var/log/remote/gpu-1"


def test_the_log_host_presents_its_site_certificate(host):
    address = host.check_output("hostname -I").split()[0]
    handshake = GPU_NODE.run(
        "openssl s_client -connect %s:2514 -CAfile /etc/onprem-llm/pki/ca.crt "
        "-verify_hostname monitoring-1 -cert /etc/onprem-llm/pki/server.crt "
        "-key /etc/onprem-llm/pki/server.key </dev/null",
        address,
    )
    assert "Verify return code: 0 (ok)" in handshake.stdout, handshake.stdout + handshake.stderr


def test_logs_reach_the_log_host_and_none_is_lost_while_it_is_down(host):
    marker = f"onprem-llm-ship-{time.time_ns()}"
    remote = f"{REMOTE_LOGS}/onprem-llm-ship.log"

    def lines(suffix):
        return host.run("grep -F -- %s %s", f"{marker}-{suffix}", remote).stdout.splitlines()

    def numbers_received():
        return [int(line.rsplit("-", 1)[1]) for line in lines("down")]

    GPU_NODE.check_output("logger -t onprem-llm-ship %s", f"{marker}-up")
    assert wait_for(lambda: lines("up"), timeout=30), "a message did not reach the log host"
    assert host.file(REMOTE_LOGS).mode == 0o750
    # The log host down (the socket too, which would start it again): messages wait on gpu-1.
    host.check_output("systemctl stop rsyslog.service syslog.socket")
    try:
        assert not host.socket("tcp://0.0.0.0:2514").is_listening
        GPU_NODE.check_output(
            "for i in $(seq 1 1000); do logger -t onprem-llm-ship %s-down-$i; done", marker
        )
        time.sleep(3)
        assert lines("down") == []
    finally:
        host.check_output("systemctl start syslog.socket rsyslog.service")
    assert wait_for(lambda: len(set(numbers_received())) >= 1000, timeout=120)
    received = numbers_received()
    # RELP delivers at least once: a message whose acknowledgement was lost in the reconnect is
    # sent again. None may be missing; only the few in flight at the reconnect may come twice.
    assert sorted(set(received)) == list(range(1, 1001))
    assert len(received) - 1000 <= 16, f"{len(received) - 1000} messages received twice"


def test_request_records_reach_the_log_host_apart_from_the_host_log(host):
    # HAProxy's JSON request log is a request record: kept apart, with its own retention. gpu-1
    # has Debian's haproxy package, whose 49-haproxy.conf keeps HAProxy's log on the host.
    assert GPU_NODE.file("/etc/rsyslog.d/49-haproxy.conf").exists
    marker = f"onprem-llm-request-{time.time_ns()}"
    GPU_NODE.check_output("logger -t haproxy %s", marker)
    requests = f"{REMOTE_LOGS}/requests/haproxy.log"
    assert wait_for(lambda: host.run("grep -qF -- %s %s", marker, requests).rc == 0, timeout=30)
    assert host.run("grep -rqF -- %s %s/*.log", marker, REMOTE_LOGS).rc != 0
    assert host.file(f"{REMOTE_LOGS}/requests").mode == 0o750


def test_shipped_logs_are_deleted_after_the_retention_of_their_kind(host):
    # Rotated files 200, 40 and 4 days old of a host log (90 days here) and of a request log
    # (30 days here): the host log keeps the 40-day file, the request log does not.
    dated = {"20250101": 200, "20261027": 40, "20261202": 4}
    bases = [f"{REMOTE_LOGS}/retention-test.log", f"{REMOTE_LOGS}/requests/retention-test.log"]
    for base in bases:
        for date, age in dated.items():
            host.check_output(
                "mkdir -p $(dirname %s) && echo line > %s"
                " && echo old | gzip > %s-%s.gz && touch -d '-%s days' %s-%s.gz",
                base, base, base, date, str(age), base, date,
            )  # fmt: skip
    try:
        host.check_output("logrotate --force /etc/logrotate.d/onprem-llm-remote-logs")
        host_log, request_log = bases
        kept = {
            base: sorted(date for date in dated if host.file(f"{base}-{date}.gz").exists)
            for base in bases
        }
        assert kept == {host_log: ["20261027", "20261202"], request_log: ["20261202"]}, kept
    finally:
        for base in bases:
            host.run("rm -f %s %s-*", base, base)
