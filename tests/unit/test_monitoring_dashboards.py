"""The Grafana dashboards shipped in roles/grafana/files/dashboards read the recording rules:
every llm:* name they query is recorded by the prometheus role, every query parses as PromQL
(promtool), and the data source is a variable so that they import into any Grafana."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO_ROOT / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))
RECORDING_RULES = (
    REPO_ROOT / "roles" / "prometheus" / "templates" / "rules" / "llm-recording.yml.j2"
)
LLM_NAME = re.compile(r"llm:[a-z_:0-9]+[a-z0-9]")


def recorded_names() -> set[str]:
    text = "\n".join(
        line for line in RECORDING_RULES.read_text().splitlines() if not line.startswith("{{")
    )
    return {rule["record"] for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}


def queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_the_three_dashboards_exist():
    titles = {json.loads(path.read_text())["title"] for path in DASHBOARDS}
    assert titles == {"LLM fleet overview", "LLM serving per model", "GPU health"}
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_queries_name_only_recorded_series(path):
    dashboard = json.loads(path.read_text())
    names = {name for expr in queries(dashboard) for name in LLM_NAME.findall(expr)}
    assert names, "the dashboard uses no recording rule"
    assert names <= recorded_names(), names - recorded_names()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_queries_parse(path, tmp_path, promtool):
    dashboard = json.loads(path.read_text())
    exprs = [
        re.sub(r"\$\w+", "x", expr)
        for expr in queries(dashboard)
        if not expr.startswith("label_values(")
    ]
    # promtool parses expressions inside a rule file; one recording rule per query.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    rule_file = tmp_path / "dashboard.yml"
    rule_file.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
