"""Filters of the GPU host stack roles (pure logic in module_utils/_nvidia_stack.py)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils import _nvidia_stack as stack


def _wrap(function: Any) -> Any:
    def filter_function(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except stack.StackInputError as error:
            raise AnsibleFilterError(str(error)) from None

    filter_function.__name__ = function.__name__
    filter_function.__doc__ = function.__doc__
    return filter_function


def nvidia_driver_plan(profile: str, branch: Any, version: str, **options: Any) -> dict[str, Any]:
    """Packages, services, modprobe options and kernel arguments of a profile."""
    return stack.driver_plan(profile, branch, version, **options)


def nvidia_cuda_repo_url(base_url: str, distribution: str, version: str, machine: str) -> str:
    """URL of NVIDIA's CUDA repository for an OS release and CPU architecture."""
    return stack.cuda_repo_url(base_url, stack.repo_distro(distribution, version), machine)


class FilterModule:
    """GPU host stack filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "nvidia_driver_plan": _wrap(nvidia_driver_plan),
            "nvidia_cuda_repo_url": _wrap(nvidia_cuda_repo_url),
            "nvidia_cuda_check": _wrap(stack.check_cuda),
            "nvidia_imex_nodes": _wrap(stack.imex_nodes),
        }
