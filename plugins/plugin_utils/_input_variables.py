"""One host's variables as a role sees them, and the roles each host gets by its groups.

Pure: the templating function is passed in (the validate_input action gives Ansible's Templar
for the host; unit tests give none), so that resolution, precedence and the per-host role
choice are tested without an Ansible run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ansible.module_utils.common.yaml import yaml_load

# site.yml is the one group -> role map: validation reads it, so the input checked for a host is
# that of exactly the roles site.yml applies to it.
SITE_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "site.yml"
# Imported playbooks that apply no role of their own input (validation itself; restarts by
# rolling_restart.yml, which run roles site.yml has already validated).
_NOT_ROLE_PLAYS = ("validate_input.yml", "engine_pending_restarts.yml")


class SiteRole(NamedTuple):
    """A role as site.yml applies it: by group (None: every host), under a condition or not."""

    name: str
    group: str | None
    when: str | None


def site_roles(playbook: Path = SITE_PLAYBOOK) -> tuple[SiteRole, ...]:
    """The roles of every play of a playbook, in order, following import_playbook."""
    roles: list[SiteRole] = []
    for play in yaml_load(playbook.read_text()):
        imported = play.get("ansible.builtin.import_playbook")
        if imported is not None:
            if imported not in _NOT_ROLE_PLAYS:
                roles.extend(site_roles(playbook.parent / imported))
            continue
        group = None if play["hosts"] == "all" else play["hosts"]
        for entry in play.get("roles", ()):
            entry = entry if isinstance(entry, dict) else {"role": entry}
            when = entry.get("when")
            roles.append(
                SiteRole(entry["role"].removeprefix("onprem.llm."), group, when and str(when))
            )
    return tuple(roles)


SITE_ROLES = site_roles()
ROLES = tuple(role.name for role in SITE_ROLES)
# The groups site.yml gives roles to: a role may name one in its firewall rules (who scrapes,
# who connects) that a smaller site's inventory lacks.
SITE_GROUPS = frozenset(role.group for role in SITE_ROLES if role.group is not None)


_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Templates whose result may change without any variable changing are never reused.
_UNCACHEABLE = re.compile(r"\b(lookup|query|q|now)\s*\(|random|uuid|password|pipe|env\b")


class VariableError(KeyError):
    """A variable whose value cannot be resolved: not set, or its template fails."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def roles_for_host(
    host: str,
    groups: Mapping[str, Iterable[str]],
    applies: Callable[[str], bool] = lambda _when: True,
) -> list[str]:
    """The roles site.yml applies to a host: by its inventory groups, and for a role with a
    condition, by applies(condition) (the caller evaluates it with the host's variables)."""
    roles = []
    for role in SITE_ROLES:
        if role.group is not None and host not in (groups.get(role.group) or ()):
            continue
        if role.when is not None and not applies(role.when):
            continue
        roles.append(role.name)
    return roles


def has_template(value: Any) -> bool:
    """Whether a value (or anything inside it) is a Jinja template that needs rendering."""
    if isinstance(value, str):
        return any(marker in value for marker in _TEMPLATE_MARKERS)
    if isinstance(value, dict):
        return any(has_template(key) or has_template(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_template(item) for item in value)
    return False


# A template simple enough to resolve without Jinja: text around {{ name }} and
# {{ name | default(literal) }} expressions, as most role defaults and vault references are.
_EXPRESSION = re.compile(r"{{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*default\(([^()]*)\)\s*)?-?}}")
_NO_DEFAULT = object()


def simple_template(value: str) -> list[tuple[str, Any]] | None:
    """A template as parts (text, None) and (name, default), or None when it needs Jinja."""
    parts: list[tuple[str, Any]] = []
    position = 0
    for match in _EXPRESSION.finditer(value):
        text = value[position : match.start()]
        if any(marker in text for marker in _TEMPLATE_MARKERS):
            return None
        if text:
            parts.append((text, None))
        default: Any = _NO_DEFAULT
        if match.group(2) is not None:
            try:
                default = ast.literal_eval(match.group(2).strip())
            except (ValueError, SyntaxError):
                return None
            if isinstance(default, tuple):  # default(value, true): Jinja decides
                return None
        parts.append((match.group(1), (default,)))
        position = match.end()
    rest = value[position:]
    if any(marker in rest for marker in _TEMPLATE_MARKERS):
        return None
    if rest:
        parts.append((rest, None))
    return parts


def plain(value: Any) -> Any:
    """A copy of a value as built-in Python types (no Ansible tags): cheap to copy again."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def layered(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """One mapping from layers given lowest precedence first (later layers win)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


class HostVariables(Mapping[str, Any]):
    """A host's variables, rendered only when read, each at most once.

    raw holds the values before templating, precedence already applied (see layered: the role's
    defaults, then the host's inventory variables, then the role's vars). render(name, value)
    turns a template that needs Jinja into its result and raises VariableError when it cannot;
    simpler templates ({{ name }}, {{ name | default(literal) }} and text around them) are
    resolved here. memo, shared by the hosts of a run, keeps what render returned for a
    template and the values of the variables it names: a host whose variables are the same
    reuses the result instead of rendering the template again.
    """

    def __init__(
        self,
        host: str,
        raw: Mapping[str, Any],
        render: Callable[[str, Any], Any] | None = None,
        memo: dict[Any, Any] | None = None,
        peers: Callable[..., HostVariables] | None = None,
    ) -> None:
        self.host = host
        self._raw = raw
        self._render = render
        self._memo = memo
        self._peers = peers
        self._resolved: dict[str, Any] = {}
        self._resolving: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        if name in self._resolved:
            return self._resolved[name]
        if name not in self._raw:
            raise VariableError(name, "is not defined")
        value = self._raw[name]
        if has_template(value):
            if name in self._resolving:
                raise VariableError(name, "its template refers to itself")
            self._resolving.add(name)
            try:
                value = self._template(name, value)
            finally:
                self._resolving.discard(name)
        self._resolved[name] = value
        return value

    def _template(self, name: str, value: Any) -> Any:
        if isinstance(value, (dict, list)):
            return self._container(name, value)
        parts = simple_template(value) if isinstance(value, str) else None
        if parts is None:
            return self._jinja(name, value)
        values = []
        for part, default in parts:
            if default is None:
                values.append(part)
                continue
            try:
                values.append(self[part])
            except VariableError as error:
                if default[0] is not _NO_DEFAULT:
                    values.append(default[0])
                elif part in self._raw:
                    raise VariableError(name, str(error)) from None
                else:
                    raise VariableError(name, f"'{part}' is undefined") from None
        if len(parts) == 1 and parts[0][1] is not None:
            return values[0]
        return "".join(str(item) for item in values)

    def _container(self, name: str, value: Any) -> Any:
        """A list or dict whose templates are all simple, item by item; else Jinja renders it."""
        if not _only_simple_templates(value):
            return self._jinja(name, value)
        if isinstance(value, dict):
            return {key: self._container(name, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._container(name, item) for item in value]
        return self._template(name, value) if has_template(value) else value

    def _jinja(self, name: str, value: Any) -> Any:
        if self._render is None:
            raise VariableError(name, f"cannot render {value!r} without a templar")
        key = self._memo_key(value) if self._memo is not None else None
        if key is None:
            return self._render(name, value)
        if key not in self._memo:
            try:
                self._memo[key] = self._render(name, value)
            except VariableError as error:
                self._memo[key] = error
        result = self._memo[key]
        if isinstance(result, VariableError):
            raise VariableError(name, result.reason)
        return result

    def _memo_key(self, value: Any) -> Any:
        """The template and the values of every variable it may read, or None: not reusable."""
        text = repr(plain(value))
        if _UNCACHEABLE.search(text):
            return None
        names = sorted({word for word in _IDENTIFIER.findall(text) if word in self._raw})
        inputs = []
        for word in names:
            try:
                inputs.append((word, _fingerprint(self[word])))
            except VariableError as error:
                inputs.append((word, ("undefined", error.reason)))
        return text, tuple(inputs)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def defined(self, name: str) -> bool:
        """Ansible's `is defined`: set, and its template renders."""
        if name not in self._raw:
            return False
        try:
            self[name]
        except VariableError:
            return False
        return True

    def raw(self, name: str, default: Any = None) -> Any:
        """The value before templating."""
        return self._raw.get(name, default)

    def peer(self, host: str, role: str | None = None) -> HostVariables:
        """Another host's variables as the same role (or the role named) sees them: rules
        across hosts, such as the hosts of one engine instance, or the models the engine hosts
        serve for the gateways; KeyError for a host the inventory lacks."""
        if self._peers is None:
            raise KeyError(host)
        return self._peers(host) if role is None else self._peers(host, role)


def _only_simple_templates(value: Any) -> bool:
    if isinstance(value, str):
        return not has_template(value) or simple_template(value) is not None
    if isinstance(value, dict):
        return all(not has_template(key) and _only_simple_templates(v) for key, v in value.items())
    if isinstance(value, list):
        return all(_only_simple_templates(item) for item in value)
    return True


def _fingerprint(value: Any) -> Any:
    """What identifies a value for reuse: its data, or the object itself when it is not data
    (an object that stands for another one says so in its same_as attribute)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return ("data", repr(plain(value)))
        except RecursionError:
            return ("object", id(value))
    return ("object", id(getattr(value, "same_as", value)))
