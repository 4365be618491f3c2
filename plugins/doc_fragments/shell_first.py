# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Attributes shared by the actions that answer from one shell command and otherwise run the
builtin module (onprem.llm.command, file, slurp, systemd_service)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
  async:
    support: full
    details: Async tasks always run the builtin module.
  bypass_host_loop:
    support: none
  platform:
    platforms: posix
"""
