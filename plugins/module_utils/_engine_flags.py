# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Which command-line flags an engine accepts, read from its own --help: pure functions.

Engines refuse flags they do not know (argparse's "unrecognized arguments", click's "No such
option", clap's "unexpected argument") and a systemd unit then restarts them in a loop. Reading
the argument list of the version that will run, before its unit is written, turns that into one
clear error naming the flag, the version and the variable that asked for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Long options (--max-model-len, --tp_size, --no-enable-log-requests) and short ones (-tp, -O),
# wherever they appear: usage lines, option lists, clap's and click's tables.
_OPTION = re.compile(r"(?<![\w/.=-])(--?[A-Za-z][A-Za-z0-9_-]*)")


@dataclass(frozen=True)
class FlagCheck:
    """Flags asked for that the engine lacks: required ones fail, optional ones are dropped."""

    missing: dict[str, str] = field(default_factory=dict)  # flag -> variable that asked for it
    dropped: list[str] = field(default_factory=list)


def parse_help(text: str) -> list[str]:
    """Every option an engine's help text names, sorted."""
    return sorted(set(_OPTION.findall(text)))


def option_of(argument: str) -> str | None:
    """The option an argument sets (--flag=value -> --flag, -O3 -> -O), or None for a value."""
    if not argument.startswith("-") or re.match(r"^-\d", argument) or argument in ("-", "--"):
        return None
    return argument.split("=", 1)[0]


def accepted(option: str, known: set[str]) -> bool:
    """Whether `option` is one the engine knows, directly or by an accepted prefix form.

    vLLM takes dotted sub-options of a JSON option (--compilation-config.mode, -O.mode) and a
    short option with its value attached (-O3).
    """
    if option in known:
        return True
    base = option.split(".", 1)[0]
    if base in known:
        return True
    if not option.startswith("--") and len(option) > 2:
        return option[:2] in known
    return False


def flags_of_arguments(arguments: Iterable[str]) -> list[str]:
    """The options among a list of extra arguments, in order, once each."""
    seen: list[str] = []
    for argument in arguments:
        option = option_of(str(argument))
        if option and option not in seen:
            seen.append(option)
    return seen


def check(wanted: Mapping[str, str], optional: Iterable[str], known: Iterable[str]) -> FlagCheck:
    """Compare the flags the role will pass (flag -> variable) with the engine's own list."""
    known_set = set(known)
    optional_set = set(optional)
    missing: dict[str, str] = {}
    dropped: list[str] = []
    for flag, variable in wanted.items():
        if accepted(flag, known_set):
            continue
        if flag in optional_set:
            dropped.append(flag)
        else:
            missing[flag] = variable
    return FlagCheck(missing=missing, dropped=dropped)


def failure_message(result: FlagCheck, engine: str) -> str:
    parts = [f"{flag} (asked for by {variable})" for flag, variable in result.missing.items()]
    return (
        f"{engine} does not accept "
        + ", ".join(parts)
        + ": it is not in the engine's own argument list (--help). Remove it, or pin an engine"
        " version that has it."
    )


def cache_name(engine: str, identity: str, version: str) -> str:
    """The file, in the cache directory, that keeps the argument list of one engine version."""
    key = hashlib.sha256(f"{engine}\0{identity}\0{version}".encode()).hexdigest()
    return key[:16] + ".json"


def wanted_flags(
    wanted: Mapping[str, str], arguments: Mapping[str, Iterable[str] | None]
) -> dict[str, str]:
    """Every flag the role will pass (flag -> variable): `wanted`, then those of the extra
    arguments of each variable in `arguments`."""
    flags = dict(wanted)
    for variable, values in arguments.items():
        for flag in flags_of_arguments(values or []):
            flags.setdefault(flag, variable)
    return flags


def dropped_warnings(result: FlagCheck, wanted: Mapping[str, str], engine: str) -> list[str]:
    """One warning per optional flag left out, naming the variable that asked for it."""
    return [f"{engine} has no {flag} ({wanted[flag]}): it is left out" for flag in result.dropped]
