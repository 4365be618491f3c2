"""Controller-side tools for the onprem.llm Ansible collection.

The API is imported lazily, so parts of the package that run elsewhere (such as the cache
service on gateways) do not need ansible-runner installed.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

# The distribution's version, which setup.py takes from the collection's galaxy.yml.
try:
    __version__ = metadata.version("onprem-llm")
except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "RunOptions": "onprem_llm.api",
    "cache_evict": "onprem_llm.api",
    "cache_purge": "onprem_llm.api",
    "check": "onprem_llm.api",
    "deploy": "onprem_llm.api",
    "rolling_restart": "onprem_llm.api",
    "validate": "onprem_llm.api",
    "ExitCode": "onprem_llm.results",
    "Failure": "onprem_llm.results",
    "HostStats": "onprem_llm.results",
    "RunResult": "onprem_llm.results",
    "VaultPassword": "onprem_llm.secrets",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'onprem_llm' has no attribute {name!r}")
