"""The collection builds, installs into an empty path and documents its roles."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_build_install_and_role_docs(tmp_path):
    # A fresh HOME, so no earlier install of the collection can answer for this one.
    env = {**os.environ, "HOME": str(tmp_path / "home"), "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO_ROOT)],
        tmp_path,
        env,
    )
    (tarball,) = tmp_path.glob("onprem-llm-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "roles/common/meta/argument_specs.yml" in names
    assert not [n for n in names if n.split("/")[0] in {"tests", "molecule", "src", ".venv"}]
    assert not [n for n in names if "__pycache__" in n or n.startswith("collections")]

    install_path = tmp_path / "installed"
    run(
        ["ansible-galaxy", "collection", "install", str(tarball), "-p", str(install_path)],
        tmp_path,
        env,
    )
    env["ANSIBLE_COLLECTIONS_PATH"] = str(install_path)
    for role, variable in (
        ("common", "common_chrony_servers"),
        ("firewall", "firewall_allow"),
        ("model_store", "model_store_path"),
    ):
        docs = run(["ansible-doc", "-t", "role", f"onprem.llm.{role}"], tmp_path, env)
        assert str(install_path) in docs
        assert variable in docs
