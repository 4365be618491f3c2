"""site.yml and the input validation name the same roles for the same groups: the validation
play checks a host's variables for exactly the roles site.yml applies to it."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import ROLE_GROUPS

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def site_roles(playbook: Path) -> set[tuple[str, str | None]]:
    """(role, group) for every role of every play, following import_playbook."""
    pairs: set[tuple[str, str | None]] = set()
    for play in yaml.safe_load(playbook.read_text()):
        if "ansible.builtin.import_playbook" in play:
            imported = play["ansible.builtin.import_playbook"]
            if imported != "validate_input.yml":
                pairs |= site_roles(playbook.parent / imported)
            continue
        group = None if play["hosts"] == "all" else play["hosts"]
        for entry in play.get("roles", []):
            name = entry["role"] if isinstance(entry, dict) else entry
            pairs.add((name.removeprefix("onprem.llm."), group))
    return pairs


def test_validation_checks_the_roles_site_yml_applies():
    assert site_roles(PLAYBOOKS / "site.yml") == set(ROLE_GROUPS)
