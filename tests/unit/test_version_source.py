"""galaxy.yml holds the one copy of the version; the package and the collection build agree."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

import onprem_llm

REPO_ROOT = Path(__file__).resolve().parents[2]


def galaxy_version() -> str:
    return str(yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"])


def test_the_package_reports_the_collection_version():
    assert metadata.version("onprem-llm") == galaxy_version()
    assert onprem_llm.__version__ == galaxy_version()


def test_setup_reads_the_version_from_galaxy_yml():
    result = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == galaxy_version()


def test_no_other_project_file_writes_the_version():
    version = re.escape(galaxy_version())
    # A version next to the project's name or in a version field, not any x.y.z (pins, ports).
    named = rf"onprem[-_]llm[-_a-z]*[-:]{version}\b"
    field = rf"version_*\s*[=:]\s*\"?{version}\b"
    pattern = re.compile(f"({named}|{field})")
    files = (
        "pyproject.toml",
        "README.md",
        "execution-environment.yml",
        "src/onprem_llm/__init__.py",
    )
    written = [name for name in files if pattern.search((REPO_ROOT / name).read_text())]
    assert written == []
