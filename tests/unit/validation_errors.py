"""Many bad inputs in one validation run: one host per case, and reading the failure message,
which maps each host to its errors."""

from __future__ import annotations

import json
import re


def host_errors(output: str, host: str) -> str:
    """The errors the validation lists for one host, one a line ("" when it lists none)."""
    decoder = json.JSONDecoder()
    errors: list[str] = []
    for match in re.finditer(rf'"{re.escape(host)}": (?=\[)', output):
        errors.extend(decoder.raw_decode(output, match.end())[0])
    return "\n".join(errors)


def one_host_per_case(cases: dict, prefix: str, base: dict | None = None) -> dict[str, dict]:
    """Host variables for an inventory with one host per bad-input case: base, then the case's
    variables; the hosts are named prefix00, prefix01, ... in the cases' order."""
    return {
        f"{prefix}{index:02d}": {**(base or {}), **bad_vars}
        for index, (bad_vars, _expected) in enumerate(cases.values())
    }


def assert_each_host_reports_its_case(output: str, cases: dict, prefix: str) -> None:
    """Every case's expected texts are in its own host's errors ({host} in a text: the whole
    output must hold it with the host's name)."""
    for index, (case, (_bad_vars, expected)) in enumerate(cases.items()):
        host = f"{prefix}{index:02d}"
        errors = host_errors(output, host)
        for text in expected:
            if "{host}" in text:
                assert text.format(host=host) in output, f"{case}: {text!r} not in the output"
            else:
                assert text in errors, f"{case}: {text!r} not in its host's errors:\n{errors}"


def gpu_site(nodes: dict[str, dict], monitoring: dict | None = None) -> dict:
    """An inventory of these GPU nodes and one monitoring host (monitoring-1)."""
    return {
        "all": {
            "children": {
                "gpu_nodes": {"hosts": nodes},
                "monitoring": {"hosts": {"monitoring-1": monitoring or {}}},
            }
        }
    }
