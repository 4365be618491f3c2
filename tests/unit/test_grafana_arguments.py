"""The grafana role's variables are checked against its argument specs by Ansible itself when the
role starts (no collection code): a wrong type stops the run, naming the variable, before any
task of the role."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1].parent


def test_a_wrong_type_stops_the_role_before_any_task(tmp_path: Path) -> None:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "ansible.builtin.include_role": {"name": "onprem.llm.grafana"},
                "vars": {
                    "grafana_http_port": "not-a-port",
                    "grafana_admin_password": "a-long-enough-password",
                },
            }
        ],
    }
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play]))
    result = subprocess.run(
        ["ansible-playbook", "--check", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections")},
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "grafana_http_port" in out, out
    assert "Validation of arguments failed" in out, out
    assert "a-long-enough-password" not in out, out
    # The first task of the role (its preflight) never ran.
    assert "Require an admin password" not in out, out
