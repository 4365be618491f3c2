# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Attributes shared by onprem.llm.copy and onprem.llm.template (the builtin ones' attributes)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    platforms: posix
"""
