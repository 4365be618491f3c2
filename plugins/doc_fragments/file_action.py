# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Options and attributes shared by onprem.llm.copy and onprem.llm.template."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  parents:
    description:
      - Make the directories above O(dest) that are missing, as C(mkdir --parents) does, owned by
        the user the task runs as, with mode O(parents_mode).
      - They are looked for only when the file itself is missing, so a run that changes nothing
        makes no call for them (a separate directory task costs one per run). Directories that
        exist are left as they are. A drop-in directory such as
        C(/etc/systemd/system/haproxy.service.d) needs nothing more.
    type: bool
    default: false
  parents_mode:
    description: Permissions of the directories O(parents) makes.
    type: raw
    default: "0755"
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
