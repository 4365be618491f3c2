# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Attributes shared by the actions that answer from one shell command and otherwise run the
builtin module (onprem.llm.command, file, slurp, systemd_service, wait_for, user, uri, get_url,
deb822_repository). check_mode full and diff_mode none unless a module's own attributes say
otherwise."""


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
  check_mode:
    support: full
    details: A task already right is answered the same in check mode; any other runs the module.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""
