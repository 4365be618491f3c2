# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""When apt's package lists need a refresh: pure decisions for the package_lists module.

Ansible's apt module judges the lists fresh by apt's update-success-stamp or, without it, the
mtime of /var/lib/apt/lists. Minimal, cloud and hardened images empty that directory when they
are built, so its mtime is recent while no list is there, and every package not already
installed is "not available" for an hour. Here lists that are absent, or that offer no
candidate for a wanted package, are refreshed whatever their age; age (the same stamp, which
the module writes after each refresh) only decides in the normal case.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# Files in /var/lib/apt/lists that are not index files.
_NOT_INDEX = re.compile(r"^(lock|partial|auxfiles)$")
# What the apt module accepts after a name: pkg=1.2*, pkg>=1.2, pkg:amd64.
_VERSION_SPEC = re.compile(r"(=|>=|<=|>>|<<|>|<).*$")
# The relations the apt module itself splits on (its package_split).
_APT_RELATION = re.compile(r"(>?=)")
# fnmatch patterns, which the apt module expands against its cache.
_WILDCARD = re.compile(r"[*?\[]")
# dpkg-query output read by installed_versions(): one line per package dpkg knows.
DPKG_QUERY_FORMAT = "${binary:Package}\t${Package}\t${Status}\t${Version}\n"


@dataclass(frozen=True)
class Decision:
    refresh: bool
    reason: str


def index_files(names: Iterable[str]) -> list[str]:
    """The package index files among the entries of /var/lib/apt/lists."""
    return [name for name in names if not _NOT_INDEX.match(name) and "_Packages" in name]


def package_names(packages: Iterable[str]) -> list[str]:
    """Bare package names from apt module entries; local .deb files and URLs are left out."""
    names = []
    for entry in packages:
        entry = entry.strip()
        if not entry or entry.endswith(".deb") or "/" in entry:
            continue
        names.append(_VERSION_SPEC.sub("", entry))
    return names


def parse_dpkg_status(output: str) -> dict[str, str]:
    """Map each installed package to its version, from dpkg-query with DPKG_QUERY_FORMAT.

    Keyed by the bare and the architecture-qualified name; a package that is only unpacked,
    half-configured or removed with its configuration kept is not installed, as for apt.
    """
    installed: dict[str, str] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) != 4 or not fields[2].endswith(" installed"):
            continue
        qualified, name, _status, version = fields
        installed[qualified] = version
        installed.setdefault(name, version)
    return installed


def held_packages(output: str) -> list[str]:
    """The packages on hold (dpkg's selection `hold`), from dpkg-query with DPKG_QUERY_FORMAT."""
    held = set()
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and fields[2].startswith("hold "):
            held.add(fields[1])
    return sorted(held)


def not_installed(
    packages: Iterable[str],
    installed: Mapping[str, str],
    at_least: Callable[[str, str], bool],
) -> list[str]:
    """The apt module entries not installed at a version they accept.

    `name` wants any version, `name=version` exactly that one, `name>=version` that one or a later
    (`at_least(installed, wanted)` compares as dpkg does). Entries this cannot judge the way the
    apt module would (fnmatch patterns, local .deb files, URLs) count as not installed, so the
    apt module decides them.
    """
    pending = []
    for entry in packages:
        entry = entry.strip()
        if not entry:
            continue
        name, relation, version = entry, "", ""
        parts = _APT_RELATION.split(entry, maxsplit=1)
        if len(parts) == 3:
            name, relation, version = parts
        current = installed.get(name)
        if entry.endswith(".deb") or "/" in entry or _WILDCARD.search(entry) or current is None:
            accepted = False
        elif relation == "=":
            accepted = current == version
        else:
            accepted = relation != ">=" or at_least(current, version)
        if not accepted:
            pending.append(entry)
    return pending


def pattern_pins(entries: Iterable[str], installed: Mapping[str, str]) -> dict[str, str]:
    """The `name=version-pattern` entries (e.g. `nvidia-open=580.126.09-*`) whose installed version
    matches their pattern, by name: apt changes nothing for them only if no newer version that
    matches is offered, which settled_pins() decides from the versions offered."""
    pins = {}
    for entry in entries:
        name, relation, pattern = [*_APT_RELATION.split(entry.strip(), maxsplit=1), "", ""][:3]
        if (
            relation == "="
            and _WILDCARD.search(pattern)
            and not _WILDCARD.search(name)
            and name in installed
            and fnmatch.fnmatchcase(installed[name], pattern)
        ):
            pins[name] = pattern
    return pins


def parse_madison(output: str) -> dict[str, list[str]]:
    """Map each package to the versions its lists offer, from `apt-cache madison` lines
    (` name | version | source`)."""
    offered: dict[str, list[str]] = {}
    for line in output.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) >= 3 and fields[0] and fields[1]:
            offered.setdefault(fields[0], []).append(fields[1])
    return offered


def settled_pins(
    pins: Mapping[str, str],
    installed: Mapping[str, str],
    offered: Mapping[str, list[str]],
    at_least: Callable[[str, str], bool],
) -> list[str]:
    """The pinned names apt leaves alone: the installed version is the newest that matches.

    The apt module pins a `name=pattern` entry's matching versions above every other, so its
    candidate is the newest matching version known (offered, or the installed one); anything
    newer than the installed version is an upgrade.
    """
    settled = []
    for name, pattern in pins.items():
        current = installed[name]
        newer = [
            version
            for version in offered.get(name, [])
            if version != current
            and fnmatch.fnmatchcase(version, pattern)
            and at_least(version, current)
        ]
        if not newer:
            settled.append(name)
    return settled


def parse_policy(output: str) -> dict[str, bool]:
    """Map each package `apt-cache policy` describes to whether it is installed or installable.

    A package apt knows nothing of gets no block at all; one known only by name (a virtual
    package, or one whose lists are gone) has `Installed: (none)` and `Candidate: (none)`.
    """
    available: dict[str, bool] = {}
    current = None
    for line in output.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
            available[current] = False
            continue
        field, _unused, value = line.strip().partition(":")
        if (
            current is not None
            and field in ("Installed", "Candidate")
            and value.strip() != "(none)"
        ):
            available[current] = True
    return available


def unavailable(wanted: Iterable[str], policy: Mapping[str, bool]) -> list[str]:
    """The wanted names that no package list offers (architecture qualifiers allowed)."""
    missing = []
    for name in wanted:
        if not (policy.get(name) or policy.get(name.split(":", 1)[0])):
            missing.append(name)
    return missing


def decide(
    *,
    index_count: int,
    lists_age: float | None,
    missing: list[str],
    valid_time: int,
    check_mode: bool,
) -> Decision:
    """Refresh when no list is there, a wanted package is unknown, or the lists are too old.

    Age alone never refreshes in check mode (that would only change the cache); a missing list or
    package does, since without it check mode would fail where a real run succeeds.
    """
    if index_count == 0:
        return Decision(True, "no package lists are present")
    if missing:
        return Decision(True, "no package list offers " + ", ".join(missing))
    if lists_age is None or lists_age > valid_time:
        if check_mode:
            return Decision(
                False, "package lists are older than valid_time (not refreshed in check mode)"
            )
        return Decision(True, f"package lists are older than {valid_time} s")
    return Decision(False, "package lists are fresh and offer every wanted package")
