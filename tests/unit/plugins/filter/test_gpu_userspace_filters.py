"""The GPU userspace filters turn bad input into a filter error that names the variable."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.gpu_userspace import FilterModule

FILTERS = FilterModule().filters()


def test_every_filter_is_documented():
    from pathlib import Path

    here = Path(__file__).resolve().parents[4] / "plugins" / "filter"
    for name in FILTERS:
        assert (here / f"{name}.yml").is_file(), name


def test_bad_toolkit_version_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="container_runtime_nvidia_toolkit_version"):
        FILTERS["nvidia_container_toolkit_plan"]("1.17")
