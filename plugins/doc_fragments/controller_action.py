# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Attributes of the actions that only read on the controller (validate_input,
firewall_listeners): no connection, no change, no diff."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    support: full
    platforms: all
"""
