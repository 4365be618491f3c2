"""Every module's and filter's DOCUMENTATION, EXAMPLES and RETURN parse as YAML (ansible-doc
and the docs site read them; a plain scalar with ': ' in it silently hides the documentation)."""

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


FILTER_DOCS = sorted((Path(__file__).resolve().parents[2] / "plugins" / "filter").glob("*.yml"))


@pytest.mark.parametrize("path", FILTER_DOCS, ids=[path.stem for path in FILTER_DOCS])
def test_filter_documentation_parses(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert set(document) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, path.name
    assert document["DOCUMENTATION"]["name"] == path.stem
    assert document["DOCUMENTATION"]["short_description"]
