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

    # The actions that read the site for every host of the play at once (firewall_listeners,
    # data_volumes): run once, with hosts set to ansible_play_batch.
    PLAY_HOSTS = r"""
options:
  hosts:
    description:
      - The inventory hosts to read; empty for the current host only.
      - Run the action once for the play (C(run_once)) with C(ansible_play_batch) here, and
        each host reads its own entry of the result's C(hosts).
    type: list
    elements: str
    default: []
"""
