"""Filters of the cuda_toolkit, nccl and container_runtime roles (logic in module_utils)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils import _gpu_userspace as userspace
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_stack import StackInputError


def _wrap(function: Any) -> Any:
    def filter_function(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except StackInputError as error:
            raise AnsibleFilterError(str(error)) from None

    filter_function.__name__ = function.__name__
    filter_function.__doc__ = function.__doc__
    return filter_function


class FilterModule:
    """GPU userspace filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "nvidia_container_toolkit_plan": _wrap(userspace.container_toolkit_plan),
            "nvidia_cdi_supported": _wrap(userspace.cdi_supported),
        }
