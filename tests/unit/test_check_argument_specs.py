"""The argument-spec drift check finds each kind of drift and passes the real roles."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "check_argument_specs", REPO_ROOT / "tests" / "harness" / "check_argument_specs.py"
)
assert _spec and _spec.loader
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def make_role(root: Path, defaults: dict, options: dict) -> Path:
    role = root / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    specs = {"argument_specs": {"main": {"options": options}}}
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(specs))
    return role


def test_matching_role_has_no_drift(tmp_path):
    role = make_role(tmp_path, {"demo_port": 80}, {"demo_port": {"type": "int", "default": 80}})
    assert check.role_drift(role) == []


def test_undocumented_default_is_reported(tmp_path):
    role = make_role(tmp_path, {"demo_port": 80, "demo_extra": 1}, {"demo_port": {"default": 80}})
    assert check.role_drift(role) == ["demo: demo_extra is in defaults but not in argument_specs"]


def test_different_default_value_is_reported(tmp_path):
    role = make_role(tmp_path, {"demo_port": 80}, {"demo_port": {"default": 8080}})
    assert "demo_port defaults to 80 but argument_specs says 8080" in check.role_drift(role)[0]


def test_spec_default_missing_from_defaults_is_reported(tmp_path):
    role = make_role(tmp_path, {}, {"demo_port": {"default": 80}})
    assert check.role_drift(role) == ["demo: demo_port has a spec default but is not in defaults"]


def test_repository_roles_have_no_drift():
    roles = sorted(p for p in (REPO_ROOT / "roles").iterdir() if p.is_dir())
    assert roles
    assert [problem for role in roles for problem in check.role_drift(role)] == []
