"""Fail when a role's meta/argument_specs.yml and defaults/main.yml disagree.

Every public default must be documented with the same default value, and every documented
option with a default must be in defaults/main.yml.
Usage: python check_argument_specs.py ROLES_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def role_drift(role: Path) -> list[str]:
    """Return human-readable differences between a role's defaults and argument specs."""
    defaults_file = role / "defaults" / "main.yml"
    specs_file = role / "meta" / "argument_specs.yml"
    if not specs_file.is_file():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    defaults = load_yaml(defaults_file) if defaults_file.is_file() else {}
    options = load_yaml(specs_file).get("argument_specs", {}).get("main", {}).get("options", {})
    problems = []
    for name in sorted(set(defaults) - set(options)):
        problems.append(f"{role.name}: {name} is in defaults but not in argument_specs")
    for name, spec in sorted(options.items()):
        if name not in defaults:
            if "default" in spec:
                problems.append(f"{role.name}: {name} has a spec default but is not in defaults")
            continue
        if spec.get("default") != defaults[name]:
            problems.append(
                f"{role.name}: {name} defaults to {defaults[name]!r} but argument_specs says "
                f"{spec.get('default')!r}"
            )
    return problems


def main(argv: list[str]) -> int:
    roles_dir = Path(argv[1] if len(argv) > 1 else "roles")
    roles = sorted(path for path in roles_dir.iterdir() if path.is_dir())
    problems = [problem for role in roles for problem in role_drift(role)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"argument specs checked for {len(roles)} roles: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
