"""The package's version is the collection's: galaxy.yml holds the one copy."""

import re
from pathlib import Path

from setuptools import setup


def collection_version() -> str:
    text = (Path(__file__).parent / "galaxy.yml").read_text(encoding="utf-8")
    match = re.search(r"^version:\s*['\"]?([^'\"\s#]+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit("galaxy.yml has no version")
    return match.group(1)


setup(version=collection_version())
