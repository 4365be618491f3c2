#!/usr/bin/python
# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module onprem.llm.package_lists: refresh apt's lists when they cannot serve a run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: package_lists
short_description: Refresh apt's package lists when they are absent, lack a package, or are old
version_added: 0.1.0
description:
  - Does nothing when every entry of O(packages) is already installed at a version it accepts,
    and says so in RV(installed), so that the install task after it can be skipped. A no-op run
    then costs one light module call per role instead of two (the apt module opens apt's whole
    cache to find that nothing is to do).
  - Otherwise runs C(apt-get update) when no package list is present, when no list offers a
    candidate for one of O(packages) that is not installed, or when the lists are older than
    O(valid_time) seconds.
  - Use it before M(ansible.builtin.apt) installs O(packages), instead of that module's
    C(cache_valid_time). The apt module judges freshness by a timestamp alone; on a host whose
    lists were emptied recently (minimal, cloud and hardened images, test images) it refreshes
    nothing for C(cache_valid_time) seconds and every package not installed is "not available".
  - Age is read from C(/var/lib/apt/periodic/update-success-stamp), which this module touches
    after each successful refresh (the apt module reads the same stamp), or, without it, from the
    mtime of the lists directory.
  - After a refresh, a package that still has no candidate fails the task, naming it; in check
    mode it is returned in RV(missing) with a warning instead, because a check run does not add
    the repositories that earlier tasks would add. Roles end their check for the host when
    RV(missing) is not empty.
  - A refresh changes only apt's cache, not the host's configuration, so it is reported as
    RV(cache_updated), not as a change (as the apt module does when it installs packages).
  - Its action plugin reads the state of every package of the host once per run and answers
    later tasks of that run on the host from it, without a module call, when they want only
    packages that state shows installed at the wanted version (C(name) and C(name=version)
    entries). It keeps that state on the controller in the run's own temporary directory
    (Ansible's local tmp, removed when the run ends), not as a host fact, so it is neither copied
    for every task, nor printed, nor cached for another run. A task whose packages are not all
    installed drops it (the install after it changes what dpkg knows), and the next task reads
    it from the host again. C(name>=version) entries are always judged on the host, where dpkg
    compares versions.
author:
  - onprem.llm maintainers (@onprem-llm)
options:
  packages:
    description:
      - The packages the next tasks install, exactly as given to M(ansible.builtin.apt)
        (C(name=version) and C(name>=version) allowed), versions included, so that RV(installed)
        judges what the install would do.
      - A version pattern (C(nvidia-open=580.126.09-*)) counts as installed when the installed
        version matches it and the lists offer no newer version that matches (the apt module
        would upgrade to that one); one C(apt-cache madison) call answers that for all of them.
      - Name patterns, local C(.deb) files and URLs are left to the apt module. They make
        RV(installed) false and are not looked up in the lists.
    type: list
    elements: str
    default: []
  valid_time:
    description:
      - Seconds the lists count as fresh when they offer every package.
    type: int
    default: 3600
  report_state:
    description:
      - Also return the state of every package dpkg knows as RV(package_state). The action
        plugin sets it; a playbook does not need to.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      In check mode absent lists, or lists that lack a wanted package, are still refreshed (a
      check run would otherwise fail where the real run succeeds); age alone does not refresh.
      Packages still not offered are returned in RV(missing) instead of failing.
  diff_mode:
    support: none
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    platforms: debian
seealso:
  - module: ansible.builtin.apt
"""

EXAMPLES = r"""
- name: Refresh the package lists when they cannot serve the install
  onprem.llm.package_lists:
    packages: "{{ haproxy_packages }}"

  register: haproxy_lists

# In check mode the packages may come from a repository the run has not really added.
- name: Stop the role here in check mode when no source offers the packages yet
  ansible.builtin.meta: end_role
  when: haproxy_lists.missing | length > 0

- name: Install HAProxy
  ansible.builtin.apt:
    name: "{{ haproxy_packages }}"
    state: present
  when:
    - haproxy_lists.missing | length == 0
    - not haproxy_lists.installed
"""

RETURN = r"""
installed:
  description:
    - Whether every entry of O(packages) is installed (dpkg state C(installed)) at a version it
      accepts, so that M(ansible.builtin.apt) with C(state=present) would change nothing. True
      for an empty O(packages).
  returned: always
  type: bool
held:
  description:
    - The packages of O(packages) on hold (dpkg selection C(hold)) before any install, by bare
      name. A role holds the others only, unless its install changed something.
  returned: always
  type: list
  elements: str
  sample: [nvidia-open]
cache_updated:
  description: Whether C(apt-get update) ran.
  returned: always
  type: bool
missing:
  description:
    - The packages no configured source offers after a refresh. Only ever not empty in check
      mode; outside it such packages fail the task.
  returned: always
  type: list
  elements: str
  sample: [cuda-toolkit-13-0]
reason:
  description: Why the lists were, or were not, refreshed.
  returned: always
  type: str
  sample: no package lists are present
package_state:
  description:
    - Every package dpkg knows as installed, with its version (by bare and by
      architecture-qualified name), and every package on hold. The action plugin keeps it for
      the rest of the run and removes it from the task's result.
  returned: when O(report_state=true)
  type: dict
  sample: {installed: {haproxy: 2.6.12-1+deb12u2, "haproxy:amd64": 2.6.12-1+deb12u2}, held: []}
"""

import os
import re
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onprem.llm.plugins.module_utils._package_lists import (
    DPKG_QUERY_FORMAT,
    decide,
    held_packages,
    index_files,
    not_installed,
    package_names,
    parse_dpkg_status,
    parse_madison,
    parse_policy,
    pattern_pins,
    settled_pins,
    unavailable,
)

LISTS_DIR = "/var/lib/apt/lists"
# An apt entry's name: what comes before its version relation.
_APT_NAME = re.compile(r">?=")
UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"


def lists_age(now: float) -> float | None:
    for path in (UPDATE_STAMP, LISTS_DIR):
        if os.path.exists(path):
            return now - os.path.getmtime(path)
    return None


def missing_packages(module: AnsibleModule, names: list[str]) -> list[str]:
    if not names:
        return []
    apt_cache = module.get_bin_path("apt-cache", required=True)
    rc, out, err = module.run_command([apt_cache, "policy", *names], environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg=f"apt-cache policy failed: {err.strip()}", rc=rc)
    return unavailable(names, parse_policy(out))


def dpkg_status(module: AnsibleModule, names: list[str], every_package: bool = False) -> str:
    """dpkg-query's lines for `names`, or for every package dpkg knows with `every_package`."""
    if not names and not every_package:
        return ""
    dpkg_query = module.get_bin_path("dpkg-query", required=True)
    command = [dpkg_query, "--show", f"--showformat={DPKG_QUERY_FORMAT}"]
    command += [] if every_package else names
    rc, out, err = module.run_command(command, environ_update={"LC_ALL": "C"})
    # 1: some name is unknown to dpkg; the others are still listed.
    if rc not in (0, 1):
        module.fail_json(msg=f"dpkg-query failed: {err.strip()}", rc=rc)
    return str(out)


def offered_versions(module: AnsibleModule, names: list[str]) -> dict[str, list[str]]:
    if not names:
        return {}
    apt_cache = module.get_bin_path("apt-cache", required=True)
    rc, out, err = module.run_command(
        [apt_cache, "madison", *names], environ_update={"LC_ALL": "C"}
    )
    if rc != 0:
        module.fail_json(msg=f"apt-cache madison failed: {err.strip()}", rc=rc)
    return parse_madison(out)


def version_at_least(module: AnsibleModule, version: str, wanted: str) -> bool:
    dpkg = module.get_bin_path("dpkg", required=True)
    rc, _out, _err = module.run_command([dpkg, "--compare-versions", version, "ge", wanted])
    return rc == 0


def refresh(module: AnsibleModule) -> None:
    apt_get = module.get_bin_path("apt-get", required=True)
    # Any source that fails to download fails the task, instead of leaving that source's packages
    # silently "not available".
    command = [apt_get, "update", "-q", "-o", "APT::Update::Error-Mode=any"]
    rc, out, err = module.run_command(command, environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg=f"apt-get update failed: {(err or out).strip()}", rc=rc)
    os.makedirs(os.path.dirname(UPDATE_STAMP), exist_ok=True)
    with open(UPDATE_STAMP, "a", encoding="utf-8"):
        os.utime(UPDATE_STAMP)


def result(
    *, installed: bool, held: list[str], cache_updated: bool, reason: str, missing: list[str]
) -> dict[str, Any]:
    # Refreshing only changes apt's cache, never the host's configuration: never "changed".
    return {
        "changed": False,
        "installed": installed,
        "held": held,
        "cache_updated": cache_updated,
        "reason": reason,
        "missing": missing,
    }


def run(module: AnsibleModule, now: float) -> dict[str, Any]:
    names = package_names(module.params["packages"])
    if not module.params["report_state"]:
        status = dpkg_status(module, names)
        return judge(module, now, names, parse_dpkg_status(status), held_packages(status))
    # One dpkg-query for every package: the wanted ones are among them.
    status = dpkg_status(module, names, every_package=True)
    installed, held = parse_dpkg_status(status), held_packages(status)
    bare_names = {name.split(":", 1)[0] for name in names}
    outcome = judge(module, now, names, installed, [name for name in held if name in bare_names])
    outcome["package_state"] = {"installed": installed, "held": held}
    return outcome


def judge(
    module: AnsibleModule, now: float, names: list[str], installed: dict[str, str], held: list[str]
) -> dict[str, Any]:
    def at_least(version: str, wanted: str) -> bool:
        return version_at_least(module, version, wanted)

    pending = not_installed(module.params["packages"], installed, at_least)
    # A pin like name=580.126.09-* that the installed version matches: installed, unless the
    # lists offer a newer matching version (one apt-cache call for all of them).
    pins = pattern_pins(pending, installed)
    if pins:
        settled = settled_pins(pins, installed, offered_versions(module, list(pins)), at_least)
        pending = [
            entry for entry in pending if _APT_NAME.split(entry, maxsplit=1)[0] not in settled
        ]
    if not pending:
        return result(
            installed=True,
            held=held,
            cache_updated=False,
            reason="every package is installed at a version it accepts",
            missing=[],
        )
    entries = os.listdir(LISTS_DIR) if os.path.isdir(LISTS_DIR) else []
    index_count = len(index_files(entries))
    missing = missing_packages(module, names) if index_count else names
    decision = decide(
        index_count=index_count,
        lists_age=lists_age(now),
        missing=missing,
        valid_time=module.params["valid_time"],
        check_mode=module.check_mode,
    )
    if not decision.refresh:
        return result(
            installed=False, held=held, cache_updated=False, reason=decision.reason, missing=[]
        )
    refresh(module)
    still_missing = missing_packages(module, names)
    if still_missing and module.check_mode:
        # A check run does not add the repositories that earlier tasks would add; the role ends
        # its check for the host here instead of failing where the real run would succeed.
        module.warn(
            "check mode: no configured package source offers "
            + ", ".join(still_missing)
            + " yet; the tasks that install and configure them are not checked"
        )
        return result(
            installed=False,
            held=held,
            cache_updated=True,
            reason=decision.reason,
            missing=still_missing,
        )
    if still_missing:
        module.fail_json(
            msg="no configured package source offers "
            + ", ".join(still_missing)
            + " after a refresh of the package lists: check the package names and the repository"
            " or mirror variables of the role",
            cache_updated=True,
            reason=decision.reason,
        )
    return result(
        installed=False, held=held, cache_updated=True, reason=decision.reason, missing=[]
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "valid_time": {"type": "int", "default": 3600},
            "report_state": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if module.params["valid_time"] < 0:
        module.fail_json(msg=f"valid_time must be 0 or more, got {module.params['valid_time']}")
    module.exit_json(**run(module, time.time()))


if __name__ == "__main__":
    main()
