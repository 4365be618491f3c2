"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse as YAML (ansible-doc and the docs
site read them; a plain scalar with ': ' in it silently hides a module's documentation)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py"))


def _documentation(path: Path) -> dict[str, str]:
    strings = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in {
                    "DOCUMENTATION",
                    "EXAMPLES",
                    "RETURN",
                }:
                    strings[target.id] = node.value.value
    return strings


@pytest.mark.parametrize("path", MODULES, ids=[path.stem for path in MODULES])
def test_module_documentation_parses(path: Path) -> None:
    strings = _documentation(path)
    assert set(strings) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, path.name
    documentation = yaml.safe_load(strings["DOCUMENTATION"])
    assert documentation["module"] == path.stem
    assert documentation["short_description"]
    for name in ("EXAMPLES", "RETURN"):
        yaml.safe_load(strings[name])
