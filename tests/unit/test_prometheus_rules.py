"""The prometheus role's recording and alert rules, rendered as the role renders them, pass
`promtool check rules` and the `promtool test rules` suites in roles/prometheus/files/tests/.

Every alert must be seen both firing and not firing there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE = REPO_ROOT / "roles" / "prometheus"
RULE_TESTS = sorted((ROLE / "files" / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")

RENDER_PLAYBOOK = """
- name: Render the prometheus role's rule files
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Render each rule file
      ansible.builtin.template:
        src: "{role}/templates/rules/{{{{ item }}}}.j2"
        dest: "{{{{ out }}}}/{{{{ item }}}}"
        mode: "0644"
      loop: "{{{{ _prometheus_rule_files }}}}"
"""

pytestmark = pytest.mark.usefixtures("promtool")


def render_rules(out: Path, extra_vars: dict | None = None) -> list[Path]:
    """Render the rule templates with the role's defaults (and extra vars) into out."""
    playbook = out / "render.yml"
    playbook.write_text(RENDER_PLAYBOOK.format(role=ROLE))
    variables = {"out": str(out), "ansible_python_interpreter": sys.executable}
    variables.update(extra_vars or {})
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(playbook), "-e", json.dumps(variables)],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_prometheus_rule_files"]
    return [out / name for name in rule_files]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rules")
    # A site with one instance across two GB200 trays (its head's server, as the inventory gives).
    render_rules(out, {"prometheus_alert_engine_span_servers": ["gb200-r1-t1-0"]})
    for test_file in RULE_TESTS:
        shutil.copy(test_file, out / test_file.name)
    return out


def rules_in(directory: Path) -> list[dict]:
    rules = []
    for path in sorted(directory.glob("llm-*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_rendered_rules_pass_promtool_check(rendered):
    result = promtool("check", "rules", *[p.name for p in rendered.glob("llm-*.yml")], cwd=rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rendered_rules_carry_the_managed_header(rendered):
    for path in rendered.glob("llm-*.yml"):
        assert path.read_text().startswith("#\n# Ansible managed"), path.name


@pytest.mark.parametrize("test_file", [p.name for p in RULE_TESTS])
def test_promtool_rule_tests_pass(rendered, test_file):
    result = promtool("test", "rules", test_file, cwd=rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def alert_cases() -> dict[str, dict[str, int]]:
    """Count, per alert, the promtool cases that expect it firing and not firing."""
    cases: dict[str, dict[str, int]] = {}
    for test_file in RULE_TESTS:
        for test in yaml.safe_load(test_file.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                counts = cases.setdefault(case["alertname"], {"firing": 0, "quiet": 0})
                counts["firing" if case.get("exp_alerts") else "quiet"] += 1
    return cases


def test_every_alert_is_tested_firing_and_not_firing(rendered):
    alerts = {rule["alert"] for rule in rules_in(rendered) if "alert" in rule}
    cases = alert_cases()
    assert len(alerts) >= 15
    missing = sorted(alerts - set(cases))
    assert not missing, f"alerts without promtool tests: {missing}"
    one_sided = sorted(name for name in alerts if min(cases[name].values()) == 0)
    assert not one_sided, f"alerts not tested both firing and not firing: {one_sided}"
    assert not set(cases) - alerts, "tests name alerts that do not exist"


def test_every_recording_rule_feeds_a_test_an_alert_or_another_rule(rendered):
    rules = rules_in(rendered)
    used = "\n".join(rule["expr"] for rule in rules)
    used += "".join(p.read_text() for p in RULE_TESTS)
    unused = [r["record"] for r in rules if "record" in r and used.count(r["record"]) < 2]
    assert not unused, f"recording rules neither tested nor used: {unused}"


def test_recording_rules_use_only_llm_names(rendered):
    for rule in rules_in(rendered):
        if "record" in rule:
            assert rule["record"].startswith("llm:"), rule["record"]


def test_thresholds_and_hold_time_come_from_variables(tmp_path):
    render_rules(
        tmp_path,
        {
            "prometheus_alert_for_override": "10s",
            "prometheus_alert_gpu_temperature_celsius": 77,
            "prometheus_alert_kv_cache_usage_ratio": 0.8,
            "prometheus_alert_redis_evictions_per_second": 25,
            "prometheus_cache_saved_price_per_million_prompt_tokens": 2.5,
            "prometheus_cache_saved_price_per_million_completion_tokens": 10,
        },
    )
    alerts = {rule["alert"]: rule for rule in rules_in(tmp_path) if "alert" in rule}
    records = {rule["record"]: rule for rule in rules_in(tmp_path) if "record" in rule}
    holds = {rule["for"] for rule in alerts.values() if "for" in rule}
    assert holds == {"10s"}
    assert alerts["GpuTemperatureHigh"]["expr"].rstrip().endswith("> 77")
    assert alerts["EngineKvCacheNearlyFull"]["expr"].rstrip().endswith("> 0.8")
    assert alerts["RedisEvictionsHigh"]["expr"].rstrip().endswith("> 25")
    saved = records["llm:tenant:cache_saved_usd:rate5m"]["expr"]
    assert 'type="prompt"} * 2.5' in saved
    assert 'type="completion"} * 10.0' in saved
    result = promtool("check", "rules", "llm-recording.yml", "llm-alerts.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(rendered, tmp_path):
    """The suites are not vacuous: the same input with an inverted expectation fails."""
    suite = yaml.safe_load((ROLE / "files" / "tests" / "gpu-alerts.yml").read_text())
    for test in suite["tests"]:
        for case in test["alert_rule_test"]:
            case["exp_alerts"] = [] if case["exp_alerts"] else [{"exp_labels": {"severity": "x"}}]
    for rule_file in rendered.glob("llm-*.yml"):
        shutil.copy(rule_file, tmp_path / rule_file.name)
    (tmp_path / "inverted.yml").write_text(yaml.safe_dump(suite))
    result = promtool("test", "rules", "inverted.yml", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("alertname: Gpu") >= 10, output
