"""How well a service this collection writes is sandboxed, as `systemd-analyze security` scores it
on the test host (0 = fully sandboxed, 10 = none). Shared by every scenario that runs such a unit
(molecule/ is on their path through molecule/conftest.py)."""

from __future__ import annotations

import re

# The most exposure any unit of this collection may have (roles' READMEs list each unit's score).
EXPOSURE_LIMIT = 4.0

_OVERALL = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def exposure(host, unit: str) -> tuple[float, str]:
    """The unit's overall exposure and systemd-analyze's findings (for the failure message)."""
    result = host.run("systemd-analyze security --no-pager %s", unit)
    match = _OVERALL.search(result.stdout + result.stderr)
    assert match, (
        f"systemd-analyze security {unit} printed no score:\n{result.stdout}{result.stderr}"
    )
    return float(match.group(1)), result.stdout


def assert_sandboxed(host, unit: str, limit: float = EXPOSURE_LIMIT) -> float:
    score, findings = exposure(host, unit)
    exposed = "\n".join(line for line in findings.splitlines() if line.lstrip().startswith("✗"))
    assert score <= limit, f"{unit}: exposure {score} > {limit}; open settings:\n{exposed}"
    return score
