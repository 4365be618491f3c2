"""execution-environment.yml stays in step with galaxy.yml and pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(scope="module")
def ee() -> dict[str, Any]:
    return _load("execution-environment.yml")


def test_is_an_ansible_builder_v3_definition(ee: dict[str, Any]) -> None:
    assert ee["version"] == 3
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    assert set(deps) <= {
        "python_interpreter", "ansible_core", "ansible_runner", "galaxy", "python", "system",
        "exclude",
    }  # fmt: skip
    assert deps["python_interpreter"]["python_path"].startswith("/")


def test_collections_match_galaxy_dependencies(ee: dict[str, Any]) -> None:
    if not (ROOT / "galaxy.yml").is_file():
        pytest.skip("no galaxy.yml yet")
    declared = _load("galaxy.yml").get("dependencies") or {}
    listed = {c["name"]: c.get("version", "*") for c in ee["dependencies"]["galaxy"]["collections"]}
    assert listed == {name: str(version) for name, version in declared.items()}


def test_ansible_pins_match_pyproject(ee: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", requirement.strip())
        assert match, f"pyproject dependency not pinned: {requirement}"
        pins[match.group(1).lower()] = match.group(2)
    deps = ee["dependencies"]
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={pins['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"] == f"ansible-runner=={pins['ansible-runner']}"


def _plugin_imports() -> set[str]:
    modules = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_python_deps_cover_what_plugins_import(ee: dict[str, Any]) -> None:
    provided = set(sys.stdlib_module_names) | {"__future__", "ansible", "ansible_collections"}
    needed = _plugin_imports() - provided
    listed = {
        re.split(r"[<>=!~\[ ;]", requirement)[0].lower()
        for requirement in ee["dependencies"]["python"]
    }
    assert needed <= listed, f"plugins import {sorted(needed - listed)}; add them to python:"
