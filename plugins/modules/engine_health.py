#!/usr/bin/python
# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module onprem.llm.engine_health: wait for an engine instance, fail early if it dies."""

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_health
short_description: Wait for an engine instance to be healthy, failing early when its unit dies
version_added: 0.1.0
description:
  - Polls O(url) with HTTP GET every O(delay) seconds until it answers O(status_code) or
    O(timeout) seconds pass. A refused connection, a timeout or another status means "not yet".
  - Between polls reads the systemd O(unit) (C(systemctl show)) and fails at once, without
    waiting out O(timeout), when the unit is C(failed), when it is inactive (stopped, or its
    process exited cleanly so C(Restart=on-failure) does not bring it back), when it is not
    loaded, or when its C(NRestarts) grew by more than O(max_restarts) since the module started
    (a crash loop - a bad argument, a missing model, a CUDA error - never reaches C(failed)
    under C(Restart=on-failure)).
  - A failure names the unit, the URL and the reason, and carries the last O(journal_lines)
    lines of the unit's journal, also appended to RV(ignore:msg).
  - Success needs the unit to be active as well, so that another process holding the port
    does not pass for the engine.
  - An instance healthy at the first look is answered by the action from one shell command (the
    request with the host's Python, then C(systemctl show)), judged by the same gate on the
    controller; the module runs for anything else, and waits or fails as described.
author:
  - onprem.llm maintainers (@onprem-llm)
options:
  url:
    description:
      - Health URL of the instance (C(http://) or C(https://)). Requested directly, never
        through a proxy from the environment.
    type: str
    required: true
  ca_path:
    description:
      - CA certificate that an C(https://) engine's certificate must chain to (the site's CA).
        The chain is verified; the name is not, because the health check calls the address the
        engine listens on and HAProxy checks the name. Without it, the system's CAs.
    type: path
  unit:
    description:
      - The instance's systemd unit, for example V(onprem-llm-engine@0.service).
    type: str
    required: true
  status_code:
    description:
      - HTTP status that means healthy.
    type: int
    default: 200
  timeout:
    description:
      - Seconds to wait for O(status_code) (model loading takes minutes on big models).
    type: int
    default: 900
  delay:
    description:
      - Seconds between polls.
    type: int
    default: 5
  request_timeout:
    description:
      - Seconds one HTTP request may take.
    type: int
    default: 10
  max_restarts:
    description:
      - Restarts of the unit tolerated while waiting; one more is a crash loop and fails.
      - Restarts count from the unit's C(NRestarts) when the module starts. Without
        C(NRestarts) (systemd older than 235) crash loops are not detected and only O(timeout)
        ends the wait.
    type: int
    default: 2
  journal_lines:
    description:
      - Lines of the unit's journal returned on failure; V(0) reads none.
    type: int
    default: 30
  headers:
    description:
      - HTTP headers to send, for example an C(Authorization) header. Never logged.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      In check mode it neither polls nor reads the unit; it returns
      C(msg=check mode, not waited).
  diff_mode:
    support: none
  idempotent:
    description: It only reads; a second run with the instance healthy returns the same result.
    support: full
  platform:
    platforms: posix
notes:
  - Runs on the managed host, so it reaches instances bound to an internal address.
  - Reading the journal needs root (or the systemd-journal group); without it RV(journal) holds
    journalctl's complaint.
  - The task holds its connection for up to O(timeout) seconds without output. Where firewalls
    cut idle SSH sessions, set C(ServerAliveInterval) in the SSH arguments.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Wait until the engine instance is healthy
  onprem.llm.engine_health:
    url: http://10.20.1.11:8000/health
    unit: onprem-llm-engine@0.service
  become: true

- name: Give a big model 30 minutes, allow no restart, and send the engine API key
  onprem.llm.engine_health:
    url: http://10.20.1.11:8001/v1/models
    unit: onprem-llm-engine@1.service
    timeout: 1800
    delay: 10
    max_restarts: 0
    journal_lines: 60
    headers:
      Authorization: "Bearer {{ engine_api_key }}"
  become: true
"""

RETURN = r"""
status:
  description: HTTP status of the last answer; null when the last poll got none.
  returned: always except in check mode
  type: int
  sample: 200
elapsed:
  description: Seconds spent waiting.
  returned: always except in check mode
  type: int
  sample: 41
restarts:
  description: Restarts of the unit while waiting; null when the unit reports no C(NRestarts).
  returned: always except in check mode
  type: int
  sample: 0
reason:
  description: Why the wait failed.
  returned: failure
  type: str
  sample: "crash loop: restarted 3 times in 41 s (Result=exit-code, status 1)"
unit_state:
  description: The unit's last reading (C(systemctl show) properties).
  returned: always except in check mode
  type: dict
  sample:
    LoadState: loaded
    ActiveState: activating
    SubState: auto-restart
    Result: exit-code
    NRestarts: 3
    ExecMainCode: 1
    ExecMainStatus: 1
journal:
  description: Last O(journal_lines) lines of the unit's journal (C(journalctl -o cat)).
  returned: failure
  type: list
  elements: str
  sample:
    - "ValueError: No available memory for the cache blocks."
"""

import ssl
import time
import urllib.error
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import Request
from ansible_collections.onprem.llm.plugins.module_utils._engine_health import (
    HEALTHY,
    SHOW_PROPERTIES,
    WAIT,
    HealthGate,
    Observation,
    Probe,
    UnitState,
    parse_unit_state,
)

# Seams for unit tests: a fake clock whose sleep advances it, a fake HTTP answer.
monotonic = time.monotonic
sleep = time.sleep


def open_health_url(url: str, headers: dict[str, str], timeout: float, context: Any = None) -> Any:
    # The engine is on this host: a proxy from the environment could only get in the way.
    return Request().open(
        "GET", url, headers=headers, use_proxy=False, timeout=timeout, context=context
    )


def tls_context(ca_path: str | None) -> ssl.SSLContext | None:
    """For an engine with its own CA: the chain must verify, the name is not checked."""
    if not ca_path:
        return None
    context = ssl.create_default_context(cafile=ca_path)
    context.check_hostname = False
    return context


def probe(url: str, headers: dict[str, str], timeout: float, context: Any = None) -> Probe:
    try:
        with open_health_url(url, headers, timeout, context) as response:
            return Probe(status=response.status)
    except urllib.error.HTTPError as err:
        err.close()
        return Probe(status=err.code)
    except urllib.error.URLError as err:
        return Probe(error=str(err.reason))
    except Exception as err:  # reset, bad status line, timeout: all "not yet"
        return Probe(error=f"{type(err).__name__}: {err}")


def read_unit(module: AnsibleModule, systemctl: str, unit: str) -> UnitState:
    command = [systemctl, "show", unit, f"--property={','.join(SHOW_PROPERTIES)}"]
    rc, stdout, stderr = module.run_command(command, check_rc=False)
    if rc != 0:
        return UnitState(error=(stderr or stdout).strip() or f"systemctl show exited {rc}")
    return parse_unit_state(stdout)


def read_journal(module: AnsibleModule, unit: str, lines: int) -> list[str]:
    if lines <= 0:
        return []
    journalctl = module.get_bin_path("journalctl")
    if not journalctl:
        return ["journalctl not found"]
    command = [journalctl, "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"]
    rc, stdout, stderr = module.run_command(command, check_rc=False)
    output = stdout.splitlines()
    if rc != 0:
        output.append(f"journalctl exited {rc}: {stderr.strip()}")
    return output


def _check_params(module: AnsibleModule) -> None:
    params = module.params
    if not params["url"].lower().startswith(("http://", "https://")):
        module.fail_json(msg=f"url must start with http:// or https://, got {params['url']}")
    for name, least in (
        ("timeout", 0),
        ("delay", 1),
        ("request_timeout", 1),
        ("max_restarts", 0),
        ("journal_lines", 0),
    ):
        if params[name] < least:
            module.fail_json(msg=f"{name} must be {least} or more, got {params[name]}")


def wait_until_healthy(module: AnsibleModule) -> None:
    params = module.params
    url, unit = params["url"], params["unit"]
    systemctl = module.get_bin_path("systemctl", required=True)
    headers = {str(key): str(value) for key, value in (params["headers"] or {}).items()}
    gate = HealthGate(
        timeout=params["timeout"],
        max_restarts=params["max_restarts"],
        status_code=params["status_code"],
    )
    context = tls_context(params["ca_path"])
    start = monotonic()
    while True:
        answer = probe(url, headers, params["request_timeout"], context)
        # Read after the request: success needs the unit still up once the answer came.
        state = read_unit(module, systemctl, unit)
        elapsed = monotonic() - start
        decision = gate.observe(Observation(elapsed=elapsed, probe=answer, unit=state))
        if decision.outcome == WAIT:
            sleep(min(params["delay"], max(params["timeout"] - elapsed, 0)))
            continue
        result: dict[str, Any] = {
            "changed": False,
            "status": answer.status,
            "elapsed": round(elapsed),
            "restarts": decision.restarts,
            "unit_state": state.as_dict(),
        }
        if decision.outcome == HEALTHY:
            module.exit_json(msg=f"{unit} healthy at {url}", **result)
        journal = read_journal(module, unit, params["journal_lines"])
        msg = f"{unit} at {url}: {decision.reason}"
        if journal:
            msg += f"\nLast {len(journal)} journal lines of {unit}:\n" + "\n".join(journal)
        module.fail_json(msg=msg, reason=decision.reason, journal=journal, **result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "unit": {"type": "str", "required": True},
            "ca_path": {"type": "path"},
            "status_code": {"type": "int", "default": 200},
            "timeout": {"type": "int", "default": 900},
            "delay": {"type": "int", "default": 5},
            "request_timeout": {"type": "int", "default": 10},
            "max_restarts": {"type": "int", "default": 2},
            "journal_lines": {"type": "int", "default": 30},
            "headers": {"type": "dict", "no_log": True},
        },
        supports_check_mode=True,
    )
    _check_params(module)
    if module.check_mode:
        module.exit_json(changed=False, msg="check mode, not waited")
    wait_until_healthy(module)


if __name__ == "__main__":
    main()
