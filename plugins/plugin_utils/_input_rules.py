"""The input rules of each role beyond its meta/argument_specs.yml, one function per rule.

Each rule reads one host's variables as its role sees them (v: a mapping with .host and
.defined(name), such as _input_variables.HostVariables) and the inventory's groups, and yields
one message per thing that is wrong, naming the variable and what was expected. None needs
facts: checks of the host itself (operating system, interfaces) stay tasks of the role.
Messages never hold a secret's value.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.onprem.llm.plugins.module_utils import (
    _engine_instances,
    _gpu_gates,
    _gpu_userspace,
    _nvidia_stack,
    _routing,
)
from ansible_collections.onprem.llm.plugins.module_utils._api_keys import (
    ApiKeyError,
    hash_api_keys,
)
from ansible_collections.onprem.llm.plugins.module_utils._firewall import (
    FirewallRuleError,
    normalize_rules,
    parse_networks,
    without_absent_groups,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._certificates import (
    provided_certificate_errors,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._data_volumes import (
    DataVolumeError,
    data_volumes,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    SITE_GROUPS,
    VariableError,
    has_template,
)

Groups = Mapping[str, list[str]]
Rule = Callable[[Any, Groups], Iterator[str]]

_URL = r"^(https?|file)://"
_LISTEN_ADDRESS = r"^(\[[0-9a-fA-F:]+\]|[0-9A-Za-z.-]*):[0-9]{1,5}$"
_BCRYPT_PREFIX = r"^\$2[aby]?\$[0-9]{2}\$"
_PROMETHEUS_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"

# Variables a role's argument spec check leaves out besides its _<role>_secret_variables.
SPEC_SKIP: dict[str, tuple[str, ...]] = {"dcgm": ("dcgm_exporter_basic_auth_users",)}


def _match(pattern: str, value: Any) -> bool:
    return re.match(pattern, "" if value is None else str(value)) is not None


def _int(value: Any) -> int:
    """Jinja's int filter: the number, or 0."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _float(value: Any) -> float:
    """Jinja's float filter: the number, or 0.0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _integer(value: Any) -> bool:
    """Jinja's `integer` test."""
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(value: Any) -> bool:
    return boolean(value, strict=False)


def _urls(v: Any, names: tuple[str, ...]) -> Iterator[str]:
    for name in names:
        value = v[name]
        if len(value) > 0 and not _match(_URL, value):
            yield f"{name} must be an http(s):// or file:// URL, got '{value}'."


# Internal links that may carry clear text only when the inventory names them here.
PLAINTEXT_LINKS_VARIABLE = "onprem_llm_plaintext_links"
PLAINTEXT_LINKS = (
    "engines",
    "node_exporter",
    "dcgm_exporter",
    "prometheus_web",
    "haproxy_internal",
    "gateway_service_metrics",
    "redis_exporter",
)
# The link each Prometheus target group scrapes.
_SCRAPE_GROUP_LINKS = {
    "node": "node_exporter",
    "dcgm": "dcgm_exporter",
    "haproxy": "haproxy_internal",
    "gateway_service": "gateway_service_metrics",
    "redis": "redis_exporter",
    "engines": "engines",
}


def _plaintext_accepted(v: Any, link: str) -> bool:
    if not v.defined(PLAINTEXT_LINKS_VARIABLE):
        return False
    links = v[PLAINTEXT_LINKS_VARIABLE]
    return isinstance(links, (list, tuple)) and link in links


def _plaintext_refused(v: Any, link: str, setting: str) -> Iterator[str]:
    """The error for a link left without TLS and not named in onprem_llm_plaintext_links."""
    if not _plaintext_accepted(v, link):
        yield (
            f"{setting} leaves {link} without TLS: its traffic would cross the internal network "
            "in clear text. Keep TLS on (the pki role's certificate, the default), or accept "
            f"clear text for this link by naming it: {PLAINTEXT_LINKS_VARIABLE}: [{link}]."
        )


def plaintext_links(v: Any, groups: Groups) -> Iterator[str]:
    if not v.defined(PLAINTEXT_LINKS_VARIABLE):
        return
    links = v[PLAINTEXT_LINKS_VARIABLE]
    unknown = (
        [str(link) for link in links if link not in PLAINTEXT_LINKS]
        if isinstance(links, (list, tuple))
        else [str(links)]
    )
    if unknown:
        yield (
            f"{PLAINTEXT_LINKS_VARIABLE} is a list of links allowed to run without TLS, from "
            f"{', '.join(PLAINTEXT_LINKS)}; not: {unknown}."
        )


def _mirror_key_message(key: str, url: str, value: Any) -> str:
    return (
        f"{key} must be set when {url} points at a mirror ({value}): packages are only "
        "installed from a repository whose signing key is given."
    )


# model_store


def model_store_path(v: Any, groups: Groups) -> Iterator[str]:
    path = v["model_store_path"]
    text = str(path)
    if not (os.path.isabs(text) and text.rstrip("/") and "/../" not in text + "/"):
        yield f"model_store_path must be an absolute path other than /, got '{path}'."


def model_store_mode(v: Any, groups: Groups) -> Iterator[str]:
    mode = v["model_store_mode"]
    if not _match("^0[0-7]{3}$", mode):
        yield f"model_store_mode must be an octal string such as '0755', got '{mode}'."


# data_volume


def data_volume_unlock(v: Any, groups: Groups) -> Iterator[str]:
    unlock = v["data_volume_luks_unlock"]
    servers = v["data_volume_luks_tang_servers"]
    if unlock == "tang":
        if len(servers) == 0:
            yield (
                "data_volume_luks_unlock: tang needs data_volume_luks_tang_servers, the URLs of "
                "one tang server or more; without one no boot could open the volumes."
            )
        for index, url in enumerate(servers):
            if not _match(r"^https?://[^\s/]+", url):
                yield (
                    f"data_volume_luks_tang_servers[{index}] must be an http(s):// URL of a "
                    f"tang server, got '{url}'."
                )
        threshold = v["data_volume_luks_tang_threshold"]
        if servers and not 1 <= _int(threshold) <= len(servers):
            yield (
                f"data_volume_luks_tang_threshold must be 1 to {len(servers)} (the number of "
                f"tang servers), got {threshold}."
            )
    if unlock == "tpm2" and not _match(r"^[0-9]+(,[0-9]+)*$", v["data_volume_luks_tpm2_pcr_ids"]):
        yield (
            "data_volume_luks_tpm2_pcr_ids must be PCR numbers separated by commas, such as "
            f"'7' or '0,7', got '{v['data_volume_luks_tpm2_pcr_ids']}'."
        )


def data_volume_volumes(v: Any, groups: Groups) -> Iterator[str]:
    yield from declared_data_volumes("data_volume_volumes", v, groups)


def declared_data_volumes(name: str, v: Any, groups: Groups) -> Iterator[str]:
    """A role's <role>_data_volumes (or the host's own), as the data_volume role will read them."""
    try:
        data_volumes({name: v[name]})
    except DataVolumeError as error:
        yield str(error)


# common


def common_plaintext_links(v: Any, groups: Groups) -> Iterator[str]:
    yield from plaintext_links(v, groups)


# firewall


def firewall(v: Any, groups: Groups) -> Iterator[str]:
    if not _bool(v["firewall_enabled"]):
        return
    names = ["firewall_allow"] + [name for name in v if re.match("^firewall_allow_.+$", name)]
    try:
        parse_networks(v["firewall_admin_networks"], "firewall_admin_networks")
        normalize_rules({name: v[name] for name in names}, groups)
    except FirewallRuleError as error:
        yield str(error)


def declared_firewall_rules(name: str, v: Any, groups: Groups) -> Iterator[str]:
    """A listening role's <role>_firewall_rules, as the firewall role will read them."""
    try:
        normalize_rules({name: without_absent_groups(v[name], groups, SITE_GROUPS)}, groups)
    except FirewallRuleError as error:
        yield str(error)


# node_exporter


_TIME_SPAN = r"^([0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|day|w|week)? ?)+$"


_AUDIT_RETENTION = {
    "audit_retention_host_days": "host audit records",
    "audit_retention_request_days": "request records",
    "audit_retention_content_days": "prompt and answer text",
    "audit_retention_playbook_run_days": "playbook-run records",
}


def audit_retention(v: Any, groups: Groups) -> Iterator[str]:
    bad = [
        name
        for name in _AUDIT_RETENTION
        if isinstance(v[name], bool) or not _match(r"^[0-9]+$", v[name]) or _int(v[name]) < 1
    ]
    for name in bad:
        yield (
            f"{name} must be 1 or more days (how long {_AUDIT_RETENTION[name]} are kept); "
            f"got {v[name]!r}."
        )
    content, requests = "audit_retention_content_days", "audit_retention_request_days"
    if not {content, requests} & set(bad) and _int(v[content]) > _int(v[requests]):
        yield (
            f"{content} ({v[content]}) is longer than {requests} ({v[requests]}): text would "
            "outlive the records that say who asked it."
        )
    programs = v["audit_log_request_programs"] or []
    wrong = [str(name) for name in programs if not _match(r"^[A-Za-z0-9_.@-]+$", name)]
    if wrong:
        yield (
            f"audit_log_request_programs has {wrong}: each must be a program name as syslog "
            "records it (letters, digits, _ . @ -), such as haproxy."
        )


def audit_journal(v: Any, groups: Groups) -> Iterator[str]:
    if not _match(_TIME_SPAN, v["audit_journal_seal_interval"]):
        yield (
            f"audit_journal_seal_interval ({v['audit_journal_seal_interval']!r}) must be a systemd "
            "time span, e.g. 15min or 1h."
        )
    if v["audit_journal_max_use"] and not _match(r"^[0-9]+[KMGT]?$", v["audit_journal_max_use"]):
        yield (
            f"audit_journal_max_use ({v['audit_journal_max_use']!r}) must be a size such as 8G "
            "(K, M, G or T), or empty for journald's default."
        )
    if not 1 <= _int(v["audit_log_port"]) <= 65535:
        yield f"audit_log_port ({v['audit_log_port']}) must be a port number, 1 to 65535."
    if _bool(v["audit_journal_seal"]) and not str(v["audit_journal_key_dir"] or "").strip():
        yield (
            "audit_journal_key_dir is empty but audit_journal_seal is true: the controller needs a "
            "directory to keep each host's verification key (keep it with the vault), or set "
            "audit_journal_seal: false."
        )


# The log host group's default: without it the monitoring group receives, or nothing is shipped.
_AUDIT_DEFAULT_LOG_GROUP = "logs"


def audit_log_hosts(v: Any, groups: Groups) -> Iterator[str]:
    group = str(v["audit_log_host_group"] or "")
    if not _bool(v["audit_log_shipping"]) or group == _AUDIT_DEFAULT_LOG_GROUP:
        return
    if not groups.get(group):
        yield (
            f"audit_log_host_group names the group '{group}', which has no hosts in the "
            "inventory, so no host's log would be shipped: add the log hosts to it, leave the "
            f"default ('{_AUDIT_DEFAULT_LOG_GROUP}', else the monitoring group), or set "
            "audit_log_shipping: false."
        )


_AUDIT_KEY = r"^[A-Za-z0-9_-]{1,31}$"


def audit_auditd(v: Any, groups: Groups) -> Iterator[str]:
    if not _bool(v["audit_auditd"]):
        return
    known = v["_audit_auditd_rule_sets"]
    unknown = [key for key in v["audit_auditd_rule_keys"] or [] if key not in known]
    if unknown:
        yield (
            f"audit_auditd_rule_keys has unknown rule set keys {unknown}: each must be one of "
            f"{', '.join(known)}."
        )
    for name in ("audit_auditd_watches", "audit_auditd_extra_watches"):
        for index, watch in enumerate(v[name] or []):
            path = str(watch.get("path", ""))
            where = f"{name}[{index}]"
            if not (path.startswith("/") and "/../" not in path + "/" and path.rstrip("/")):
                yield f"{where}.path must be an absolute path other than /, got '{path}'."
            permissions = str(watch.get("permissions", "wa"))
            if not _match(r"^[rwxa]{1,4}$", permissions) or len(set(permissions)) != len(
                permissions
            ):
                yield (
                    f"{where}.permissions must be letters of rwxa (read, write, execute, "
                    f"attribute change), each once, got '{permissions}'."
                )
            if not _match(_AUDIT_KEY, watch.get("key", "")):
                yield (
                    f"{where}.key must be 1 to 31 letters, digits, '-' or '_' (ausearch -k finds "
                    f"its events by it), got '{watch.get('key', '')}'."
                )
    if _bool(v["audit_auditd_immutable"]) and not _bool(
        v["audit_auditd_immutable_reboot_acknowledged"]
    ):
        yield (
            "audit_auditd_immutable locks the audit rules until the next reboot: no rule change, "
            "this role's included, takes effect before the host restarts. Set "
            "audit_auditd_immutable_reboot_acknowledged: true to accept that."
        )


def node_exporter_checksums(v: Any, groups: Groups) -> Iterator[str]:
    if v["node_exporter_install_method"] != "binary":
        return
    facts = v["ansible_facts"] if v.defined("ansible_facts") else {}
    arches = [v["_node_exporter_arch"]] if "architecture" in (facts or {}) else ["amd64"]
    checksums = v["node_exporter_binary_checksums"] or {}
    for arch in arches:
        if not _match("^sha256:[0-9a-f]{64}$", checksums.get(arch, "")):
            yield (
                f"node_exporter_binary_checksums.{arch} must be 'sha256:<64 hex digits>' from the "
                "release's sha256sums.txt when node_exporter_install_method is binary."
            )


def node_exporter_listen_address(v: Any, groups: Groups) -> Iterator[str]:
    address = v["node_exporter_listen_address"]
    if not _match(_LISTEN_ADDRESS, address):
        yield (
            "node_exporter_listen_address must be ADDRESS:PORT such as 0.0.0.0:9100, "
            f"got '{address}'."
        )


def node_exporter_tls(v: Any, groups: Groups) -> Iterator[str]:
    cert = v["node_exporter_tls_cert_file"]
    key = v["node_exporter_tls_key_file"]
    users = v["node_exporter_basic_auth_users"]
    if len(cert) == 0:
        yield from _plaintext_refused(v, "node_exporter", "node_exporter_tls_cert_file: ''")
    if (
        (len(cert) > 0) != (len(key) > 0)
        or (len(users) > 0 and len(cert) == 0)
        or any(not _match(_BCRYPT_PREFIX, value) for value in users.values())
    ):
        yield (
            "node_exporter_tls_cert_file and node_exporter_tls_key_file go together; "
            "node_exporter_basic_auth_users needs them (passwords never travel unencrypted) and "
            "takes bcrypt hashes ($2y$...), not passwords."
        )


# prometheus

_PROMETHEUS_PATTERNS = (
    ("prometheus_retention_time", _PROMETHEUS_DURATION, "a duration such as 30d, 12w or 1y"),
    (
        "prometheus_retention_size",
        "^$|^[0-9]+(B|KB|MB|GB|TB|PB|EB)$",
        "empty or a size such as 500GB",
    ),
    ("prometheus_scrape_interval", _PROMETHEUS_DURATION, "a duration such as 15s"),
    ("prometheus_scrape_timeout", _PROMETHEUS_DURATION, "a duration such as 10s"),
    ("prometheus_evaluation_interval", _PROMETHEUS_DURATION, "a duration such as 15s"),
    (
        "prometheus_alert_for_override",
        "^$|" + _PROMETHEUS_DURATION,
        "empty or a duration such as 10s",
    ),
)
_PROMETHEUS_THRESHOLDS = (
    ("prometheus_alert_gpu_temperature_celsius", 30, 120),
    ("prometheus_alert_gpu_framebuffer_used_ratio", 0, 1),
    ("prometheus_alert_queue_depth", 0, 100000),
    ("prometheus_alert_e2e_latency_p99_seconds", 0, 3600),
    ("prometheus_alert_ttft_p95_seconds", 0, 3600),
    ("prometheus_alert_kv_cache_usage_ratio", 0, 1),
    ("prometheus_alert_error_ratio", 0, 1),
    ("prometheus_alert_certificate_expiry_days", 0, 365),
)


def prometheus_durations(v: Any, groups: Groups) -> Iterator[str]:
    for name, pattern, expected in _PROMETHEUS_PATTERNS:
        value = v[name]
        if not _match(pattern, value):
            yield f"{name} must be {expected}, got '{value}'."


def prometheus_thresholds(v: Any, groups: Groups) -> Iterator[str]:
    for name, low, high in _PROMETHEUS_THRESHOLDS:
        value = v[name]
        if not low < _float(value) <= high:
            yield f"{name} must be above {low} and at most {high}, got {value}."


def prometheus_scrape_overrides(v: Any, groups: Groups) -> Iterator[str]:
    targets = v["_prometheus_scrape_group_defaults"]
    keys = v["_prometheus_scrape_override_keys"]
    for group, settings in (v["prometheus_scrape_overrides"] or {}).items():
        if (
            group not in targets
            or not isinstance(settings, Mapping)
            or any(key not in keys for key in settings)
        ):
            yield (
                f"prometheus_scrape_overrides.{group}: the target groups are "
                f"{', '.join(targets)} and each takes {', '.join(keys)}."
            )


def prometheus_alertmanager_receivers(v: Any, groups: Groups) -> Iterator[str]:
    for index, receiver in enumerate(v["prometheus_alertmanager_receivers"] or []):
        receiver = receiver if isinstance(receiver, Mapping) else {}
        if not _match(r"^https?://[^/\s]+", receiver.get("url", "")):
            yield (
                f"prometheus_alertmanager_receivers[{index}] ({receiver.get('name', '')}): "
                "url must be an http(s) URL."
            )


def prometheus_alertmanager_default_receiver(v: Any, groups: Groups) -> Iterator[str]:
    default = v["prometheus_alertmanager_default_receiver"]
    receivers = v["prometheus_alertmanager_receivers"] or []
    names = [receiver.get("name") for receiver in receivers if isinstance(receiver, Mapping)]
    if len(default) > 0 and default not in names:
        yield (
            f"prometheus_alertmanager_default_receiver '{default}' is not one of "
            "prometheus_alertmanager_receivers."
        )


def prometheus_plaintext_scrapes(v: Any, groups: Groups) -> Iterator[str]:
    overrides = v["prometheus_scrape_overrides"] or {}
    for group, settings in overrides.items():
        if isinstance(settings, Mapping) and settings.get("scheme") == "http":
            link = _SCRAPE_GROUP_LINKS.get(group)
            if link is not None:
                yield from _plaintext_refused(
                    v, link, f"prometheus_scrape_overrides.{group}.scheme: http"
                )


_WEB_USER_NAME = r"^[A-Za-z0-9_.@-]+$"
_WEB_PASSWORD_MIN_LENGTH = 16


def prometheus_web(v: Any, groups: Groups) -> Iterator[str]:
    cert = v["prometheus_web_tls_cert_file"]
    key = v["prometheus_web_tls_key_file"]
    if len(cert) == 0:
        yield from _plaintext_refused(v, "prometheus_web", "prometheus_web_tls_cert_file: ''")
    if (len(cert) > 0) != (len(key) > 0):
        yield (
            "prometheus_web_tls_cert_file and prometheus_web_tls_key_file go together (got cert "
            f"'{cert}', key '{key}'); both empty serve plain HTTP."
        )
    if not v.defined("prometheus_web_users"):
        return  # a vault reference, checked by the role's tasks once the vault is loaded
    users = v["prometheus_web_users"]
    if not isinstance(users, Mapping):
        yield "prometheus_web_users maps each user name to its password (from the vault)."
        return
    if len(cert) > 0 and len(users) == 0:
        yield (
            "prometheus_web_users is empty: Prometheus and Alertmanager serve TLS with sign-in, "
            "give at least one user and its password from the vault, e.g. "
            'prometheus_web_users: {grafana: "{{ vault_prometheus_grafana_password }}"}.'
        )
    if len(cert) == 0 and len(users) > 0:
        yield (
            "prometheus_web_users needs prometheus_web_tls_cert_file: passwords never travel "
            "unencrypted."
        )
    bad_names = [str(name) for name in users if not _match(_WEB_USER_NAME, str(name))]
    short = [
        str(name)
        for name, password in users.items()
        if not isinstance(password, str) or len(password) < _WEB_PASSWORD_MIN_LENGTH
    ]
    if bad_names or short:
        yield (
            "prometheus_web_users: user names are letters, digits and . _ @ - (bad: "
            f"{bad_names}); passwords are strings of at least {_WEB_PASSWORD_MIN_LENGTH} "
            f"characters from the vault (too short or not a string: {short})."
        )
    internal = v["prometheus_web_internal_user"]
    if len(internal) > 0 and internal not in users:
        yield (
            f"prometheus_web_internal_user '{internal}' is not one of prometheus_web_users "
            f"({sorted(str(name) for name in users)})."
        )


# nvidia_driver


def nvidia_driver_plan(v: Any, groups: Groups) -> Iterator[str]:
    try:
        _nvidia_stack.driver_plan(
            v["nvidia_driver_profile"] or "generic",
            v["nvidia_driver_branch"],
            v["nvidia_driver_version"],
            open_modules=v["nvidia_driver_open_modules"],
            nvlsm_version=v["nvidia_driver_nvlsm_version"],
        )
    except _nvidia_stack.StackInputError as error:
        yield str(error)


def nvidia_driver_mirror_key(v: Any, groups: Groups) -> Iterator[str]:
    repo_url = v["nvidia_driver_repo_url"]
    base_url = v["nvidia_driver_repo_base_url"]
    upstream = str(base_url).rstrip("/") == v["_nvidia_driver_nvidia_repo_base_url"]
    if not (len(v["nvidia_driver_repo_key_url"]) > 0 or (len(repo_url) == 0 and upstream)):
        yield (
            "nvidia_driver_repo_key_url must be set when nvidia_driver_repo_url or "
            f"nvidia_driver_repo_base_url point at a mirror ({repo_url or base_url}): packages "
            "are only installed from a repository whose signing key is given."
        )


def nvidia_driver_urls(v: Any, groups: Groups) -> Iterator[str]:
    yield from _urls(
        v, ("nvidia_driver_repo_base_url", "nvidia_driver_repo_url", "nvidia_driver_repo_key_url")
    )


def nvidia_driver_imex_rack(v: Any, groups: Groups) -> Iterator[str]:
    if v["nvidia_driver_profile"] != "gb200_nvl72":
        return
    try:
        _nvidia_stack.imex_nodes(v["nvidia_driver_imex_rack_group"], dict(groups), None, v.host)
    except _nvidia_stack.StackInputError as error:
        yield str(error)


def nvidia_driver_detected_profile(v: Any, groups: Groups) -> Iterator[str]:
    """The profile against the GPUs gpu_facts read (onprem_gpu), when the host has them."""
    profile = v["nvidia_driver_profile"]
    facts = v["onprem_gpu"] if v.defined("onprem_gpu") else None
    if not profile or not isinstance(facts, Mapping) or not _int(facts.get("gpu_count", 0)) > 0:
        return
    check = _gpu_gates.profile_check(facts, str(profile))
    if not check["ok"]:
        yield f"nvidia_driver_profile is {profile} on {v.host}: {check['message']}"


# cuda_toolkit


def cuda_toolkit_release(v: Any, groups: Groups) -> Iterator[str]:
    try:
        _nvidia_stack.check_cuda(v["cuda_toolkit_version"], v["cuda_toolkit_driver_branch"])
    except _nvidia_stack.StackInputError as error:
        yield str(error)


def cuda_toolkit_package_version(v: Any, groups: Groups) -> Iterator[str]:
    try:
        _gpu_userspace.cuda_package_version(
            v["cuda_toolkit_package_version"], v["cuda_toolkit_version"]
        )
    except _nvidia_stack.StackInputError as error:
        yield str(error)


def cuda_toolkit_mirror_key(v: Any, groups: Groups) -> Iterator[str]:
    url = v["cuda_toolkit_repo_url"]
    if len(url) > 0 and len(v["cuda_toolkit_repo_key_url"]) == 0:
        yield (
            "cuda_toolkit_repo_key_url must be set when cuda_toolkit_repo_url points at a "
            f"repository ({url}): packages are only installed from a repository whose signing "
            "key is given."
        )


def cuda_toolkit_urls(v: Any, groups: Groups) -> Iterator[str]:
    yield from _urls(v, ("cuda_toolkit_repo_url", "cuda_toolkit_repo_key_url"))


# nccl


def nccl_cuda_major(v: Any, groups: Groups) -> Iterator[str]:
    try:
        _nvidia_stack.check_nccl(v["nccl_version"], v["nccl_cuda_version"])
    except _nvidia_stack.StackInputError as error:
        yield str(error)


def nccl_tests_source(v: Any, groups: Groups) -> Iterator[str]:
    if not _bool(v["nccl_tests_enabled"]):
        return
    url = v["nccl_tests_url"]
    if not _match(_URL, url):
        yield (
            "nccl_tests_url must be an http(s):// or file:// URL of the nccl-tests source "
            f"archive when nccl_tests_enabled is true, got '{url}'."
        )
    try:
        _gpu_userspace.archive_checksum(v["nccl_tests_checksum"], "nccl_tests_checksum")
    except _nvidia_stack.StackInputError as error:
        yield str(error)


# container_runtime


def container_runtime_toolkit_version(v: Any, groups: Groups) -> Iterator[str]:
    try:
        _gpu_userspace.container_toolkit_plan(v["container_runtime_nvidia_toolkit_version"])
    except _nvidia_stack.StackInputError as error:
        yield str(error)


def container_runtime_nvidia_mirror_key(v: Any, groups: Groups) -> Iterator[str]:
    base_url = v["container_runtime_nvidia_repo_base_url"]
    upstream = str(base_url).rstrip("/") == v["_container_runtime_nvidia_repo_base_url"]
    if len(v["container_runtime_nvidia_repo_key_url"]) == 0 and not upstream:
        yield _mirror_key_message(
            "container_runtime_nvidia_repo_key_url",
            "container_runtime_nvidia_repo_base_url",
            base_url,
        )


def container_runtime_docker_ce_mirror_key(v: Any, groups: Groups) -> Iterator[str]:
    if (
        v["container_runtime_engine"] != "docker"
        or v["container_runtime_docker_source"] != "docker_ce"
    ):
        return
    url = v["container_runtime_docker_ce_repo_url"]
    if len(v["container_runtime_docker_ce_key_url"]) == 0 and len(url) > 0:
        yield _mirror_key_message(
            "container_runtime_docker_ce_key_url", "container_runtime_docker_ce_repo_url", url
        )


def container_runtime_urls(v: Any, groups: Groups) -> Iterator[str]:
    yield from _urls(
        v,
        (
            "container_runtime_nvidia_repo_base_url",
            "container_runtime_nvidia_repo_key_url",
            "container_runtime_docker_ce_repo_url",
            "container_runtime_docker_ce_key_url",
        ),
    )


def container_runtime_podman_default_runtime(v: Any, groups: Groups) -> Iterator[str]:
    if (
        v["container_runtime_engine"] == "podman"
        and v["container_runtime_nvidia_default_runtime"]
        and not v["container_runtime_containerd"]
    ):
        yield (
            "container_runtime_nvidia_default_runtime applies to docker and containerd; podman "
            "reaches the GPUs through CDI (--device nvidia.com/gpu=all). Set it false or enable "
            "container_runtime_containerd."
        )


# dcgm


def dcgm_versions(v: Any, groups: Groups) -> Iterator[str]:
    version = v["dcgm_version"]
    exporter = v["dcgm_exporter_version"]
    if not (
        _match(r"^4\.[0-9]+\.[0-9]+$", version)
        and _match(r"^4\.[0-9]+\.[0-9]+-[0-9]+\.[0-9]+\.[0-9]+$", exporter)
        and (str(exporter).split("-", maxsplit=1)[0] == version or not v["dcgm_exporter_enabled"])
    ):
        yield (
            "dcgm_version must be a DCGM 4 release x.y.z such as 4.4.1 (got "
            f"'{version}') and dcgm_exporter_version <dcgm_version>-<exporter version> such as "
            f"4.4.1-4.6.0 built for that DCGM release (got '{exporter}')."
        )


def dcgm_cuda_major(v: Any, groups: Groups) -> Iterator[str]:
    """The role's _dcgm_cuda_major: cuda_toolkit_version's major when set, else dcgm_cuda_major."""
    if v.defined("cuda_toolkit_version"):
        major = str(v["cuda_toolkit_version"]).split(".", maxsplit=1)[0]
    else:
        major = v["dcgm_cuda_major"]
    if str(major) not in ("12", "13"):
        yield (
            "DCGM 4 ships datacenter-gpu-manager-4-cuda12 and -cuda13 only; the CUDA major comes "
            f"from cuda_toolkit_version when set, else dcgm_cuda_major, and is '{major}'."
        )


def dcgm_exporter_listen_address(v: Any, groups: Groups) -> Iterator[str]:
    address = v["dcgm_exporter_listen_address"]
    if not _match(_LISTEN_ADDRESS, address):
        yield (
            f"dcgm_exporter_listen_address must be [ADDRESS]:PORT such as :9400, got '{address}'."
        )


def dcgm_exporter_extra_counters(v: Any, groups: Groups) -> Iterator[str]:
    for counter in v["dcgm_exporter_extra_counters"] or []:
        item = counter if isinstance(counter, Mapping) else {}
        if not (
            _match("^DCGM_(FI|EXP)_[A-Z0-9_]+$", item.get("field", ""))
            and item.get("type", "") in ("gauge", "counter", "label")
        ):
            yield (
                "dcgm_exporter_extra_counters entries need field (DCGM_FI_... or DCGM_EXP_...) "
                f"and type (gauge, counter or label); got {counter}."
            )


def dcgm_exporter_tls(v: Any, groups: Groups) -> Iterator[str]:
    cert = v["dcgm_exporter_tls_cert_file"]
    key = v["dcgm_exporter_tls_key_file"]
    users = v["dcgm_exporter_basic_auth_users"]
    if len(cert) == 0:
        yield from _plaintext_refused(v, "dcgm_exporter", "dcgm_exporter_tls_cert_file: ''")
    names = list(users.keys()) if isinstance(users, Mapping) else []
    if not (
        (len(key) > 0 or len(cert) == 0)
        and (len(cert) > 0 or len(key) == 0)
        and isinstance(users, Mapping)
        and (len(users) == 0 or len(cert) > 0)
        and all(_match("^[A-Za-z0-9_.@-]+$", name) for name in names)
    ):
        yield (
            "dcgm_exporter_tls_cert_file and dcgm_exporter_tls_key_file go together (got cert "
            f"'{cert}', key '{key}'); dcgm_exporter_basic_auth_users needs them, so that "
            "passwords never travel unencrypted, and its user names are letters, digits and "
            f". _ @ - (got {names})."
        )


def dcgm_exporter_password_hashes(v: Any, groups: Groups) -> Iterator[str]:
    users = v["dcgm_exporter_basic_auth_users"]
    if not isinstance(users, Mapping):
        return
    if any(not _match(_BCRYPT_PREFIX + ".{53}$", value) for value in users.values()):
        yield (
            "Validate that every user of dcgm_exporter_basic_auth_users has a bcrypt hash of its "
            "password ($2y$...), a user without one is refused: dcgm_exporter_basic_auth_users "
            "maps each user to the bcrypt hash of its password."
        )


# gpu_validate


def gpu_validate_skip_gates(v: Any, groups: Groups) -> Iterator[str]:
    try:
        _gpu_gates.check_skip(v["gpu_validate_skip_gates"], "gpu_validate_skip_gates")
    except _gpu_gates.GateInputError as error:
        yield str(error)


def gpu_validate_profile(v: Any, groups: Groups) -> Iterator[str]:
    profile = v["gpu_validate_profile"]
    profiles = v["_gpu_validate_profiles"]
    count = v["gpu_validate_expected_gpu_count"]
    model = v["gpu_validate_expected_model"]
    if not (
        (profile or "") in ["", *profiles]
        and (count is None or _int(count) > 0)
        and (model is None or len(model) > 0)
    ):
        yield (
            f"gpu_validate_profile must be one of {', '.join(profiles)} or empty (got "
            f"'{profile}'); gpu_validate_expected_gpu_count must be null (the profile's) or a "
            f"positive number of GPUs (got {count}); gpu_validate_expected_model null or a word "
            "of the GPU name such as H200."
        )


def gpu_validate_container_gate(v: Any, groups: Groups) -> Iterator[str]:
    if "container_cdi" in (v["gpu_validate_skip_gates"] or []):
        return
    engine = v["gpu_validate_container_engine"]
    archive = v["gpu_validate_container_image_archive"]
    if not (
        engine in ("docker", "podman")
        and len(v["gpu_validate_container_image"]) > 0
        and (len(archive) == 0 or _match("^/", archive))
    ):
        yield (
            f"gpu_validate_container_engine must be docker or podman (got '{engine}'), "
            "gpu_validate_container_image must name an image and "
            "gpu_validate_container_image_archive be empty or an absolute path on the host "
            f"(got '{archive}')."
        )


def gpu_validate_nccl_floor(v: Any, groups: Groups) -> Iterator[str]:
    if not v["gpu_validate_nccl_tests"]:
        return
    bandwidth = v["gpu_validate_nccl_min_bus_bandwidth_gbps"]
    binary = v["gpu_validate_nccl_tests_binary"]
    if not (_float(bandwidth) > 0 and _match("^/", binary)):
        yield (
            "gpu_validate_nccl_min_bus_bandwidth_gbps must be a positive bus bandwidth in GB/s "
            f"(got {bandwidth}) and gpu_validate_nccl_tests_binary an absolute path (got "
            f"'{binary}')."
        )


def gpu_validate_report_dir(v: Any, groups: Groups) -> Iterator[str]:
    directory = v["gpu_validate_report_dir"]
    if not _match("^/.+", directory):
        yield f"gpu_validate_report_dir must be an absolute path on the host, got '{directory}'."


# engine


def engine_mode(v: Any, groups: Groups) -> Iterator[str]:
    if not (v["engine_mode"] == "container" or v["engine_type"] == "vllm"):
        yield (
            f"engine_mode native runs vLLM only; engine_type {v['engine_type']} needs "
            "engine_mode container (its image)."
        )


def engine_tls(v: Any, groups: Groups) -> Iterator[str]:
    if not _bool(v["engine_tls"]):
        yield from _plaintext_refused(v, "engines", "engine_tls: false")
    else:
        yield from _tls_profile(v, "engine")
    if _bool(v["engine_tls"]) and v["engine_type"] != "vllm":
        yield (
            f"engine_tls is true but engine_type {v['engine_type']} has no TLS option (TGI's "
            "launcher and trtllm-serve serve plain HTTP): set engine_tls: false for these hosts "
            f"and accept their clear text by naming it, {PLAINTEXT_LINKS_VARIABLE}: [engines]."
        )


def engine_settings(v: Any) -> dict[str, Any]:
    """What the role's _engine_settings holds: the settings, the host inputs and facts."""
    settings = {name: v[name] for name in _engine_instances.SETTINGS}
    for name in _engine_instances.HOST_INPUTS:
        settings[name] = v[name] if v.defined(name) else None
    settings["ansible_facts"] = (v["ansible_facts"] if v.defined("ansible_facts") else None) or {}
    return settings


def engine_instances(v: Any, groups: Groups) -> Iterator[str]:
    inventory = set(groups.get("all") or [])

    def peers(other: str) -> dict[str, Any]:
        # The other hosts of an instance across hosts, as the engine role sees them.
        if inventory and other not in inventory:
            raise KeyError(other)
        return engine_settings(v.peer(other))

    try:
        _engine_instances.host_instances(v.host, engine_settings(v), peers)
    except _engine_instances.EngineInputError as error:
        yield str(error)


def engine_span(v: Any, groups: Groups) -> Iterator[str]:
    """An instance across hosts: every host in the run's inventory group of engines, and, in
    containers, the host's network (the ranks listen on ports the kernel picks)."""
    hosts = v["engine_span_hosts"]
    if not hosts:
        return
    engines = set(groups.get("engine_nodes") or [])
    outside = [host for host in hosts if engines and host not in engines]
    if outside:
        yield (
            f"engine_span_hosts: {', '.join(map(str, outside))} not in the engine_nodes group: "
            "every host of the instance runs part of it"
        )
    if v["engine_mode"] == "container" and v["engine_container_network"] != "host":
        yield (
            "engine_container_network: an instance across hosts (engine_span_hosts) needs host, "
            f"got {v['engine_container_network']!r}: its ranks listen on ports the kernel picks"
        )


def _sha256(value: Any, pattern: str) -> bool:
    return _match(pattern, str(value or "").lower())


def engine_model_source(v: Any, groups: Groups) -> Iterator[str]:
    models = v["engine_models"] if v.defined("engine_models") else []
    if models and isinstance(models, list):
        sources = [
            (f"engine_models[{n}].source", m.get("source", {"type": "none"}))
            for n, m in enumerate(models)
            if isinstance(m, Mapping)
        ]
    else:
        sources = [("engine_model_source", v["engine_model_source"])]
    for name, source in sources:
        yield from _model_source(v, name, source)


def _model_source(v: Any, name: str, source: Any) -> Iterator[str]:
    sha256 = v["_engine_sha256"]
    item = source if isinstance(source, Mapping) else {}
    kind = item.get("type", "")
    files = item.get("files") or []
    ok = (
        kind in ("none", "path", "url", "mirror")
        and (kind != "path" or len(item.get("path") or "") > 0)
        and (
            kind != "url"
            or (_match(_URL, item.get("url", "")) and _sha256(item.get("sha256"), sha256))
        )
        and (
            kind != "mirror"
            or (
                _match(_URL, item.get("url", ""))
                and len(files) > 0
                and all(
                    _sha256(entry.get("sha256") if isinstance(entry, Mapping) else "", sha256)
                    for entry in files
                )
            )
        )
        and os.path.isabs(str(v["engine_model_store_path"]))
    )
    if not ok:
        yield (
            f"{name} must be {{type: none}}, {{type: path, path: DIR on the "
            "controller}, {type: url, url: http(s)://.../model.tar.gz, sha256: 64 hex digits} or "
            "{type: mirror, url: http(s)://mirror/DIR, files: [{name, sha256}]}: every download "
            f"needs its sha256; engine_model_store_path an absolute path. Got {source}."
        )


def engine_container_image(v: Any, groups: Groups) -> Iterator[str]:
    if v["engine_mode"] != "container":
        return
    image = v["engine_container_image"]
    archive = v["engine_container_image_archive"]
    pinned = (
        v["engine_allow_unpinned_image"]
        or re.search(v["_engine_image_digest"], str(image)) is not None
        or (
            len(archive) > 0
            and _sha256(v["engine_container_image_archive_sha256"], v["_engine_sha256"])
        )
    )
    if not (len(image) > 0 and pinned):
        yield (
            "engine_container_image must be pinned by digest (name@sha256:<64 hex digits>), or "
            "come from engine_container_image_archive with its "
            f"engine_container_image_archive_sha256; a tag alone ('{image}') is refused unless "
            "engine_allow_unpinned_image is true (labs and tests only)."
        )


def engine_native_source(v: Any, groups: Groups) -> Iterator[str]:
    if v["engine_mode"] != "native":
        return
    wheelhouse = v["engine_native_wheelhouse"]
    if not (
        os.path.isabs(str(v["engine_native_venv"]))
        and (len(wheelhouse) == 0 or os.path.isabs(str(wheelhouse)))
        and (len(wheelhouse) > 0 or _match(_URL, v["engine_native_index_url"]))
        and (len(v["engine_native_lock_file"]) > 0 or len(v["engine_native_requirements"]) > 0)
    ):
        yield (
            "Native mode needs engine_native_venv (absolute path) and either "
            "engine_native_wheelhouse (absolute path on the host) or engine_native_index_url "
            "(http(s) or file URL), and engine_native_lock_file or engine_native_requirements."
        )


_DEVICE_ALLOW = r"^(char-|block-|/dev/)\S+ [rwm]{1,3}$"


def engine_native_devices(v: Any, groups: Groups) -> Iterator[str]:
    for index, device in enumerate(v["engine_native_devices"]):
        if not _match(_DEVICE_ALLOW, device):
            yield (
                f"engine_native_devices[{index}] ({device!r}) must be a device and its access as "
                "systemd's DeviceAllow= takes it: 'char-GROUP ACCESS' (a group of /proc/devices, "
                "globs allowed), 'block-GROUP ACCESS' or '/dev/NODE ACCESS', ACCESS of r, w, m; "
                "e.g. 'char-nvidia* rw'."
            )


def engine_health_gate(v: Any, groups: Groups) -> Iterator[str]:
    timeout = v["engine_health_timeout"]
    delay = v["engine_health_delay"]
    restarts = v["engine_health_max_restarts"]
    grace = v["engine_shutdown_grace_seconds"]
    if not (
        _int(timeout) >= _int(delay)
        and _int(delay) >= 1
        and _int(restarts) >= 0
        and _int(grace) >= 0
    ):
        yield (
            f"engine_health_timeout ({timeout}) must be at least engine_health_delay ({delay}) "
            f"seconds, which must be 1 or more; engine_health_max_restarts ({restarts}) and "
            f"engine_shutdown_grace_seconds ({grace}) must be 0 or more."
        )


def engine_api_key(v: Any, groups: Groups) -> Iterator[str]:
    if v.defined("engine_api_key") and not isinstance(v["engine_api_key"], str):
        yield (
            "engine_api_key references a variable that is not defined or is not a string: is the "
            "vault (group_vars/all/vault.yml) loaded?"
        )


# pki


def pki_provided(v: Any, groups: Groups) -> Iterator[str]:
    if v["pki_mode"] != "provided":
        return
    certificate = v["pki_provided_certificate"]
    key = v["pki_provided_private_key"]
    if not (len(certificate) > 0 and len(key) > 0):
        yield (
            "pki_mode is 'provided', so pki_provided_certificate and pki_provided_private_key "
            "must name the certificate and key files on the controller (got "
            f"'{certificate}' and '{'a path' if len(key) > 0 else ''}')."
        )
        return
    certificate_path = _controller_file(v, certificate)
    if certificate_path is None:
        return  # a path relative to a playbook this check does not know: the copy finds it
    ca = v["pki_provided_ca_certificate"]
    ca_path = _controller_file(v, ca) if len(ca) > 0 else None
    if len(ca) > 0 and ca_path is None:
        return
    # What peers connect to and check: the names given, and the host's inventory address.
    names = [
        str(name).split(":", 1)[1]
        for name in v["pki_subject_alt_names"]
        if str(name).startswith(("DNS:", "IP:"))
    ]
    names.append(str(v["ansible_host"]) if v.defined("ansible_host") else v.host)
    yield from provided_certificate_errors(certificate_path, ca_path, names)


def _controller_file(v: Any, path: str) -> Path | None:
    """A controller path as the copy module finds it: absolute, or under the playbook's
    directory (or its files/); None when relative and the playbook's directory is unknown."""
    if os.path.isabs(path):
        return Path(path)
    if not v.defined("playbook_dir"):
        return None
    base = Path(str(v["playbook_dir"]))
    for candidate in (base / "files" / path, base / path):
        if candidate.exists():
            return candidate
    return base / path


def pki_names_and_lifetimes(v: Any, groups: Groups) -> Iterator[str]:
    """One message per problem, each naming its variable and the value found."""
    bad_names = [
        name for name in v["pki_subject_alt_names"] if not _match(r"^(DNS|IP|URI|email):\S+$", name)
    ]
    if bad_names:
        yield (
            "pki_subject_alt_names entries must look like DNS:name, IP:address, URI:uri or "
            f"email:address (got {bad_names})."
        )
    # Numbers given as -e key=value arrive as strings.
    days = _int(v["pki_certificate_days"])
    renew = _int(v["pki_renew_before_days"])
    ca_days = _int(v["pki_ca_days"])
    if days < 1:
        yield f"pki_certificate_days must be at least 1 (got {days})."
    elif not 0 <= renew < days:
        yield (
            f"pki_renew_before_days must be at least 0 and below pki_certificate_days ({days}) "
            f"(got {renew})."
        )
    if ca_days <= days:
        yield f"pki_ca_days must be above pki_certificate_days ({days}) (got {ca_days})."
    for name in ("pki_certificate_path", "pki_private_key_path", "pki_ca_certificate_path"):
        if not os.path.isabs(str(v[name])):
            yield f"{name} must be an absolute path (got {v[name]})."


# haproxy


def haproxy_api_keys(v: Any, groups: Groups) -> Iterator[str]:
    if not v.defined("haproxy_api_keys"):
        return
    try:
        hash_api_keys(
            v["haproxy_api_keys"], "haproxy_api_keys", _int(v["haproxy_api_key_min_length"])
        )
    except ApiKeyError as error:
        yield str(error)


def haproxy_rate_limits(v: Any, groups: Groups) -> Iterator[str]:
    requests = v["haproxy_rate_limit_requests"]
    limits = v["haproxy_rate_limits"]
    period = v["haproxy_rate_limit_period"]
    values = list(limits.values())
    if not (
        _integer(requests)
        and requests > 0
        and all(_integer(value) and value > 0 for value in values)
        and _match(v["_haproxy_duration"], period)
    ):
        yield (
            "haproxy_rate_limit_requests and each value of haproxy_rate_limits must be a "
            "positive integer (requests per period) and haproxy_rate_limit_period a duration "
            f"such as 60s; got haproxy_rate_limit_requests={requests}, "
            f"haproxy_rate_limits={dict(limits)}, haproxy_rate_limit_period={period}."
        )


def haproxy_rate_limit_tenants(v: Any, groups: Groups) -> Iterator[str]:
    if not v.defined("haproxy_api_keys"):
        return
    keys = v["haproxy_api_keys"]
    tenants = keys.keys() if isinstance(keys, Mapping) else ()
    unknown = [tenant for tenant in v["haproxy_rate_limits"] if tenant not in tenants]
    if unknown:
        yield (
            "haproxy_rate_limits names tenants without an API key in haproxy_api_keys: "
            f"{', '.join(map(str, unknown))}."
        )


_CERTIFICATE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


def haproxy_client_certificates(v: Any, groups: Groups) -> Iterator[str]:
    tenants = v["haproxy_client_certificate_tenants"]
    if not isinstance(tenants, Mapping):
        yield (
            "haproxy_client_certificate_tenants must map tenants to lists of client certificate "
            f"names (subject CN); got {type(tenants).__name__}."
        )
        return
    for tenant, names in tenants.items():
        where = f"haproxy_client_certificate_tenants['{tenant}']"
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            yield f"{where} must be a non-empty list of client certificate names (subject CN)."
            continue
        bad = [name for name in names if not _match(_CERTIFICATE_NAME, name)]
        if bad:
            yield (
                f"{where} has names that are no certificate subject CN of letters, digits and "
                f"._@- (at most 64): {bad}."
            )
    keys = v["haproxy_api_keys"] if v.defined("haproxy_api_keys") else {}
    known = keys.keys() if isinstance(keys, Mapping) else ()
    unknown = sorted(str(tenant) for tenant in tenants if tenant not in known)
    if unknown:
        yield (
            "haproxy_client_certificate_tenants names tenants without an API key in "
            f"haproxy_api_keys: {', '.join(unknown)}."
        )
    if tenants and not str(v["haproxy_client_ca_file"] or "").startswith("/"):
        yield (
            "haproxy_client_ca_file must be the absolute path of the CA that signs the tenants' "
            f"client certificates on the gateway; got '{v['haproxy_client_ca_file']}'."
        )


_HAPROXY_DURATIONS = (
    "haproxy_timeout_connect",
    "haproxy_timeout_client",
    "haproxy_timeout_server",
    "haproxy_timeout_tunnel",
    "haproxy_timeout_http_request",
    "haproxy_timeout_queue",
    "haproxy_health_check_interval",
    "haproxy_slowstart",
)


def haproxy_durations(v: Any, groups: Groups) -> Iterator[str]:
    pattern = v["_haproxy_duration"]
    bad = {name: v[name] for name in _HAPROXY_DURATIONS if not _match(pattern, v[name])}
    if bad:
        yield f"These must be HAProxy durations such as 500ms, 5s, 10m: {bad}."


def haproxy_header_names(v: Any, groups: Groups) -> Iterator[str]:
    pattern = v["_haproxy_header_name"]
    data_class = v["haproxy_data_class_header"]
    session = v["haproxy_session_header"]
    if not (_match(pattern, data_class) and _match(pattern, session)):
        yield (
            "haproxy_data_class_header and haproxy_session_header must be HTTP header names "
            f"(letters, digits and '-'); got '{data_class}' and '{session}'."
        )


_REPLACED_BY_ROUTES = (
    "haproxy_cloud_backup_url",
    "haproxy_cloud_backup_api_key",
    "haproxy_cloud_backup_data_classes",
    "haproxy_cloud_backup_models",
    "haproxy_cloud_backup_ca_file",
)


def haproxy_replaced_variables(v: Any, groups: Groups) -> Iterator[str]:
    old = [name for name in _REPLACED_BY_ROUTES if v.defined(name)]
    if old:
        yield (
            f"{', '.join(old)}: replaced by haproxy_cloud_providers (url, region, api_key, "
            "ca_file), haproxy_data_classes (cloud_regions per class) and haproxy_models (cloud "
            'per model); see roles/haproxy/README.md, "Models and routes".'
        )


def _cloud_providers_to_check(v: Any) -> Any:
    """haproxy_cloud_providers, or where its api_key values reference a vault that is not
    loaded (validation without it) the providers with a stand-in for each such key; None when
    it cannot be read without rendering more than those keys."""
    if v.defined("haproxy_cloud_providers") or "haproxy_cloud_providers" not in v:
        return v.get("haproxy_cloud_providers", {})
    raw = v.raw("haproxy_cloud_providers")
    if not isinstance(raw, Mapping) or not all(isinstance(s, Mapping) for s in raw.values()):
        return None
    stand_in = {
        name: {**spec, "api_key": "vault-reference"} if has_template(spec.get("api_key")) else spec
        for name, spec in raw.items()
    }
    return None if has_template(stand_in) else stand_in


def haproxy_routes(v: Any, groups: Groups) -> Iterator[str]:
    providers = _cloud_providers_to_check(v)
    if providers is None:
        return
    tenant_models = v["haproxy_tenant_models"]
    model_rate_limits = v["haproxy_model_rate_limits"]
    if v.defined("haproxy_api_keys"):
        keys = v["haproxy_api_keys"]
        tenants = list(keys) if isinstance(keys, Mapping) else []
    elif "haproxy_api_keys" in v:
        # The keys reference a vault that is not loaded: the tenants are not known here, so
        # those the routing names are taken as given (as haproxy_rate_limit_tenants does).
        named = [tenant_models, model_rate_limits]
        tenants = [t for m in named if isinstance(m, Mapping) for t in m if t != "*"]
    else:
        tenants = []
    try:
        _routing.routing_table(
            v["haproxy_engines"],
            v["haproxy_data_classes"],
            v["haproxy_default_data_class"],
            providers,
            v["haproxy_models"],
            tenant_models,
            tenants,
            model_rate_limits,
            v["haproxy_cloud_ca_file"],
        )
    except _routing.RoutingInputError as error:
        yield from str(error).splitlines()


def _repeated(values: list[str]) -> list[str]:
    return [value for value, count in Counter(values).items() if count > 1]


def haproxy_engines(v: Any, groups: Groups) -> Iterator[str]:
    engines = [entry if isinstance(entry, Mapping) else {} for entry in v["haproxy_engines"]]
    names = [str(entry.get("name", "")) for entry in engines]
    bad_names = [name for name in names if not _match("^[A-Za-z0-9][A-Za-z0-9_.-]*$", name)]
    endpoints = [
        f"{str(entry.get('address', '')).lower()}:{entry.get('port', '')}" for entry in engines
    ]
    ports = [entry.get("port") for entry in engines]
    weights = [entry["weight"] for entry in engines if "weight" in entry]
    if (
        bad_names
        or _repeated(names)
        or _repeated(endpoints)
        or not all(_integer(port) and 1 <= port <= 65535 for port in ports)
        or not all(_integer(weight) for weight in weights)
    ):
        yield (
            "haproxy_engines: each instance needs a unique name (letters, digits, '.', '_', '-'), "
            "a port 1-65535 and an optional integer weight, and no two may share an address and "
            f"port. Bad names: {bad_names}; duplicate names: {_repeated(names)}; duplicate "
            f"address:port: {_repeated(endpoints)}."
        )


def haproxy_balancing(v: Any, groups: Groups) -> Iterator[str]:
    if not (
        _int(v["haproxy_hash_balance_factor"]) > 100
        and _int(v["haproxy_health_check_rise"]) >= 1
        and _int(v["haproxy_health_check_fall"]) >= 1
        and _int(v["haproxy_engine_maxconn"]) >= 1
        and _int(v["haproxy_retries"]) >= 0
        and _match("^/", v["haproxy_health_check_path"])
    ):
        yield (
            "haproxy_hash_balance_factor must be over 100, haproxy_health_check_rise/_fall and "
            "haproxy_engine_maxconn at least 1, haproxy_retries not negative and "
            "haproxy_health_check_path a path starting with '/'."
        )


def haproxy_listeners(v: Any, groups: Groups) -> Iterator[str]:
    https = v["haproxy_https_port"]
    stats = v["haproxy_stats_port"]
    public = list(v["haproxy_public_paths"])
    denied = list(v["haproxy_denied_paths"])
    try:
        parse_networks(v["haproxy_stats_allowed_networks"], "haproxy_stats_allowed_networks")
    except FirewallRuleError as error:
        yield str(error)
    chain = v["haproxy_tls_chain"]
    if not (
        1 <= https <= 65535
        and 1 <= stats <= 65535
        and stats != https
        and all(_match(r"^/[^\s]*$", path) for path in public + denied)
        and not set(public) & set(denied)
        and os.path.isabs(str(v["haproxy_tls_certificate"]))
        and os.path.isabs(str(v["haproxy_tls_private_key"]))
        and (len(chain) == 0 or os.path.isabs(str(chain)))
        and _int(v["haproxy_bufsize"]) >= 16384
    ):
        yield (
            "haproxy_https_port and haproxy_stats_port must be different ports 1-65535; every "
            "entry of haproxy_public_paths and haproxy_denied_paths a path starting with '/', in "
            "only one of them; haproxy_tls_certificate, haproxy_tls_private_key and "
            "haproxy_tls_chain absolute paths; haproxy_bufsize at least 16384."
        )


# Mozilla's "intermediate" TLS profile: these groups, and TLS 1.2 suites with forward secrecy
# and authenticated encryption only.
_TLS_CURVES = ("X25519", "P-256", "P-384")
_TLS12_CIPHER = (
    r"^(ECDHE-(ECDSA|RSA)|DHE-RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$"
)


def haproxy_internal_tls(v: Any, groups: Groups) -> Iterator[str]:
    if not _bool(v["haproxy_stats_tls"]):
        yield from _plaintext_refused(v, "haproxy_internal", "haproxy_stats_tls: false")


def _tls_profile(v: Any, prefix: str) -> Iterator[str]:
    """<prefix>_tls_curves and <prefix>_tls_ciphers within Mozilla's intermediate profile."""
    curves = [str(curve) for curve in v[f"{prefix}_tls_curves"] or []]
    off_profile = [curve for curve in curves if curve not in _TLS_CURVES]
    if not curves or off_profile:
        yield (
            f"{prefix}_tls_curves must be some of {', '.join(_TLS_CURVES)} (Mozilla "
            f"intermediate); not allowed: {off_profile or 'an empty list'}."
        )
    ciphers = [cipher for cipher in str(v[f"{prefix}_tls_ciphers"] or "").split(":") if cipher]
    weak = [cipher for cipher in ciphers if not _match(_TLS12_CIPHER, cipher)]
    if not ciphers or weak:
        yield (
            f"{prefix}_tls_ciphers must list TLS 1.2 suites with forward secrecy and AEAD "
            "(ECDHE or DHE key exchange, GCM or CHACHA20-POLY1305), no CBC or RSA key exchange; "
            f"not allowed: {weak or 'an empty list'}."
        )


def haproxy_tls_profile(v: Any, groups: Groups) -> Iterator[str]:
    yield from _tls_profile(v, "haproxy")
    if not _integer(v["haproxy_hsts_max_age"]) or _int(v["haproxy_hsts_max_age"]) < 0:
        age = v["haproxy_hsts_max_age"]
        yield f"haproxy_hsts_max_age must be 0 (off) or more seconds; got {age}."


# keepalived


def keepalived_virtual_ip(v: Any, groups: Groups) -> Iterator[str]:
    address = v["keepalived_virtual_ipaddress"]
    message = (
        "keepalived_virtual_ipaddress must be an IPv4 address with its prefix length, such as "
        f"10.20.0.10/24; got '{address}'."
    )
    if not _match(v["_keepalived_vip_pattern"], address):
        yield message
        return
    try:
        parse_networks([address], "keepalived_virtual_ipaddress")
    except FirewallRuleError as error:
        yield str(error)
        return
    if _int(str(address).rsplit("/", maxsplit=1)[-1]) > 32:
        yield message


def keepalived_vrrp(v: Any, groups: Groups) -> Iterator[str]:
    router_id = v["keepalived_virtual_router_id"]
    priority = v["keepalived_priority"]
    if not (
        1 <= router_id <= 255
        and 0 <= priority <= 254
        and all(
            v[name] >= 1
            for name in (
                "keepalived_advert_int",
                "keepalived_check_interval",
                "keepalived_check_timeout",
                "keepalived_check_fall",
                "keepalived_check_rise",
            )
        )
        and len(v["keepalived_check_command"]) > 0
    ):
        yield (
            f"keepalived_virtual_router_id must be 1-255 (got {router_id}), keepalived_priority "
            f"0-254 (0: by order in the group; got {priority}), keepalived_advert_int and "
            "keepalived_check_interval/_timeout/_fall/_rise at least 1, and "
            "keepalived_check_command not empty."
        )


def keepalived_group(v: Any, groups: Groups) -> Iterator[str]:
    group = v["keepalived_group"]
    members = groups.get(group) or []
    if not (group in groups and v.host in members and len(members) >= 2):
        yield (
            f"keepalived_group '{group}' must be an inventory group holding this host "
            f"({v.host}) and at least one more gateway to move the virtual IP to; it has "
            f"{len(members)} host(s)."
        )


def keepalived_interface(v: Any, groups: Groups) -> Iterator[str]:
    interface = v["keepalived_interface"]
    unicast = v["keepalived_unicast_address"]
    if not (
        (len(interface) == 0 or _match(v["_keepalived_interface_pattern"], interface))
        and (len(unicast) == 0 or _match(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$", unicast))
    ):
        yield (
            "keepalived_interface must be empty (the default route's interface) or an interface "
            f"name such as eth0 (got '{interface}'); keepalived_unicast_address empty or an IPv4 "
            f"address (got '{unicast}')."
        )


def keepalived_auth_pass(v: Any, groups: Groups) -> Iterator[str]:
    if v.defined("keepalived_auth_pass") and not 1 <= len(v["keepalived_auth_pass"]) <= 8:
        yield (
            "keepalived_auth_pass must hold 1 to 8 characters (VRRP's limit; keepalived would "
            "cut it silently); put it in the vault."
        )


# redis

# Passwords and the switch that needs them (None: always).
_REDIS_PASSWORDS = (
    ("redis_cache_password", None),
    ("redis_admin_password", None),
    ("redis_exporter_password", "redis_exporter_enabled"),
    ("redis_replication_password", "redis_sentinel_enabled"),
    ("redis_sentinel_password", "redis_sentinel_enabled"),
)
_REDIS_PASSWORD_MIN_LENGTH = 16
_REDIS_USERS = (
    "redis_cache_username",
    "redis_admin_username",
    "redis_replication_username",
    "redis_sentinel_username",
    "redis_exporter_username",
)
_REDIS_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_REDIS_COMMAND = r"^[a-z][a-z0-9-]*(\|[a-z0-9-]+)?$"
# Commands that reach beyond the cache's keys or administer Redis: never the cache user's.
_REDIS_ADMIN_COMMANDS = frozenset(
    {
        "acl", "bgrewriteaof", "bgsave", "client|kill", "cluster", "config", "debug", "eval",
        "eval_ro", "evalsha", "evalsha_ro", "failover", "fcall", "fcall_ro", "flushall",
        "flushdb", "function", "keys", "migrate", "module", "monitor", "psync", "replicaof",
        "save", "script", "shutdown", "slaveof", "swapdb", "sync",
    }
)  # fmt: skip


def redis_passwords(v: Any, groups: Groups) -> Iterator[str]:
    for name, switch in _REDIS_PASSWORDS:
        if (switch is not None and not _bool(v[switch])) or not v.defined(name):
            continue  # not needed, or a vault reference the role's tasks check once loaded
        value = v[name]
        if not isinstance(value, str) or len(value) == 0:
            yield (
                f"{name} is empty: put the password in the vault and reference it, e.g. "
                f'{name}: "{{{{ vault_{name} }}}}".'
            )
        elif len(value) < _REDIS_PASSWORD_MIN_LENGTH or re.search(r"[\s\"'\\]", value):
            yield (
                f"{name} must hold at least {_REDIS_PASSWORD_MIN_LENGTH} characters and no "
                "spaces, quotes or backslashes (Redis configuration lines carry it); put it in "
                "the vault."
            )


def redis_users(v: Any, groups: Groups) -> Iterator[str]:
    names = [str(v[name]) for name in _REDIS_USERS]
    bad = [name for name in names if not _match(_REDIS_NAME, name) or name == "default"]
    if bad or _repeated(names):
        yield (
            f"{', '.join(_REDIS_USERS)} must be different ACL user names (letters, digits, '.', "
            f"'_', '-'; not 'default'). Bad: {bad}; used twice: {_repeated(names)}."
        )


def redis_cache_access(v: Any, groups: Groups) -> Iterator[str]:
    prefix = v["redis_cache_key_prefix"]
    if not _match(r"^[^\s*?\[\]\\]+$", prefix):
        yield (
            "redis_cache_key_prefix must be a key prefix without spaces or the pattern characters "
            f"* ? [ ] \\ (got '{prefix}'): an empty one would give the cache user every key."
        )
    for name in (
        "redis_cache_commands",
        "redis_exporter_commands",
        "redis_sentinel_discovery_commands",
    ):
        bad = [command for command in v[name] if not _match(_REDIS_COMMAND, command)]
        if bad:
            yield (
                f"{name}: {bad} are not command names such as get or client|setname (lowercase, "
                "one command each, no @categories)."
            )
    granted = [
        command
        for command in v["redis_cache_commands"]
        if command in _REDIS_ADMIN_COMMANDS
        or str(command).split("|", maxsplit=1)[0] in _REDIS_ADMIN_COMMANDS
    ]
    if granted:
        yield (
            f"redis_cache_commands must not grant {granted}: they reach beyond the cache's keys "
            "or administer Redis."
        )


def redis_memory(v: Any, groups: Groups) -> Iterator[str]:
    size = v["redis_maxmemory_mb"]
    percent = v["redis_maxmemory_percent"]
    if size < 0 or not 1 <= percent <= 90:
        yield (
            "redis_maxmemory_mb must be 0 (redis_maxmemory_percent of the host's memory) or a size "
            f"in MiB (got {size}), redis_maxmemory_percent 1-90 (got {percent})."
        )
    save = v["redis_persistence_save"]
    if not _match(r"^[0-9]+ [0-9]+( [0-9]+ [0-9]+)*$", save):
        yield (
            "redis_persistence_save must be 'seconds changes' pairs such as "
            f"'3600 1 300 100 60 10000', got '{save}'."
        )


def redis_network(v: Any, groups: Groups) -> Iterator[str]:
    port = v["redis_port"]
    sentinel = v["redis_sentinel_port"]
    if not (1 <= port <= 65535 and 1 <= sentinel <= 65535 and port != sentinel):
        yield (
            f"redis_port ({port}) and redis_sentinel_port ({sentinel}) must be different ports "
            "1-65535."
        )
    if _bool(v["redis_exporter_enabled"]):
        listen = v["redis_exporter_listen_address"]
        if not _match(_LISTEN_ADDRESS, listen) or _int(str(listen).rsplit(":", 1)[-1]) in (
            port,
            sentinel,
        ):
            yield (
                "redis_exporter_listen_address must be address:port (e.g. 10.20.0.21:9121) on a "
                f"port other than Redis' and Sentinel's, got '{listen}'."
            )
    address = v["redis_bind_address"]
    if len(address) > 0:
        try:
            parse_networks([address], "redis_bind_address")
        except FirewallRuleError:
            yield f"redis_bind_address must be the host's internal IP address, got '{address}'."
    paths = ("redis_tls_certificate", "redis_tls_private_key", "redis_tls_ca_certificate")
    relative = [name for name in paths if not os.path.isabs(str(v[name]))]
    if relative:
        yield f"{', '.join(relative)} must be absolute paths (the pki role's by default)."


def redis_tls_profile(v: Any, groups: Groups) -> Iterator[str]:
    yield from _tls_profile(v, "redis")


def redis_exporter_tls(v: Any, groups: Groups) -> Iterator[str]:
    if _bool(v["redis_exporter_enabled"]) and not _bool(v["redis_exporter_tls"]):
        yield from _plaintext_refused(v, "redis_exporter", "redis_exporter_tls: false")


def redis_exporter_local_port(v: Any, groups: Groups) -> Iterator[str]:
    """The exporter's own port behind its TLS terminator."""
    if not (_bool(v["redis_exporter_enabled"]) and _bool(v["redis_exporter_tls"])):
        return
    local = _int(v["redis_exporter_local_port"])
    taken = {
        _int(v["redis_port"]),
        _int(v["redis_sentinel_port"]),
        _int(str(v["redis_exporter_listen_address"]).rsplit(":", 1)[-1]),
    }
    if not 1 <= local <= 65535 or local in taken:
        yield (
            "redis_exporter_local_port must be a port 1-65535 other than Redis', Sentinel's and "
            "the exporter's listen address (its TLS terminator serves that one), got "
            f"{v['redis_exporter_local_port']}."
        )


def redis_sentinel(v: Any, groups: Groups) -> Iterator[str]:
    if not _bool(v["redis_sentinel_enabled"]):
        return
    group = v["redis_sentinel_group"]
    members = groups.get(group) or []
    if group not in groups or v.host not in members:
        yield (
            f"redis_sentinel_group '{group}' must be an inventory group holding this host "
            f"({v.host}): its hosts replicate each other and each runs a sentinel."
        )
        return
    if len(members) < 3:
        yield (
            "redis_sentinel_enabled needs at least 3 sentinels (one per host of "
            f"redis_sentinel_group '{group}', which has {len(members)}): with fewer, losing one "
            "host leaves no majority to promote a replica."
        )
    quorum = v["redis_sentinel_quorum"]
    if not 1 <= quorum <= len(members):
        yield (
            f"redis_sentinel_quorum ({quorum}) must be between 1 and the number of sentinels "
            f"({len(members)}, the hosts of redis_sentinel_group '{group}')."
        )
    name = v["redis_sentinel_master_name"]
    if not (
        _match(_REDIS_NAME, name)
        and _int(v["redis_sentinel_down_after_ms"]) >= 100
        and _int(v["redis_sentinel_failover_timeout_ms"]) >= 1000
        and _int(v["redis_sentinel_parallel_syncs"]) >= 1
    ):
        yield (
            "redis_sentinel_master_name must be a name of letters, digits, '.', '_', '-' (got "
            f"'{name}'), redis_sentinel_down_after_ms at least 100, "
            "redis_sentinel_failover_timeout_ms at least 1000 and redis_sentinel_parallel_syncs "
            "at least 1."
        )


# Fields that decide the answer: leaving one out of the cache key would replay wrong answers.
_GATEWAY_KEY_FIELDS = frozenset(
    {"model", "messages", "prompt", "input", "temperature", "top_p", "top_k", "seed", "n",
     "max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice", "response_format",
     "logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty",
     "best_of", "stream"}
)  # fmt: skip


def _gateway_service_on(v: Any) -> bool:
    return v.defined("gateway_service_enabled") and _bool(v["gateway_service_enabled"])


def gateway_service_metrics_tls(v: Any, groups: Groups) -> Iterator[str]:
    if _gateway_service_on(v) and not _bool(v["gateway_service_metrics_tls"]):
        yield from _plaintext_refused(
            v, "gateway_service_metrics", "gateway_service_metrics_tls: false"
        )


def gateway_service_wheel(v: Any, groups: Groups) -> Iterator[str]:
    if not _gateway_service_on(v):
        return
    wheel = str(v["gateway_service_wheel"] or "")
    if not wheel:
        yield (
            "gateway_service_wheel is empty: set it to the onprem_llm wheel on the controller "
            "(make gateway-wheel builds .cache/dist/onprem_llm-*.whl; or pip download "
            "onprem-llm==VERSION --no-deps -d DIR)."
        )
    elif not wheel.endswith(".whl") or not os.path.isfile(os.path.expanduser(wheel)):
        yield f"gateway_service_wheel: {wheel} is not a wheel file on the controller."
    checksum = str(v["gateway_service_wheel_sha256"] or "")
    if checksum and not _match(r"^[0-9a-fA-F]{64}$", checksum):
        yield f"gateway_service_wheel_sha256 must be 64 hex digits (sha256sum); got '{checksum}'."


def gateway_service_redis(v: Any, groups: Groups) -> Iterator[str]:
    if not _gateway_service_on(v):
        return
    group = str(v["gateway_service_redis_group"])
    if not groups.get(group):
        yield (
            f"gateway_service_enabled is true but the inventory group '{group}' "
            "(gateway_service_redis_group) has no hosts: add the Redis hosts to it."
        )
    if v.defined("gateway_service_redis_password"):
        password = v["gateway_service_redis_password"]
        if not isinstance(password, str) or not password:
            yield (
                "gateway_service_redis_password is empty: put redis_cache_password in the vault "
                '(redis_cache_password: "{{ vault_redis_cache_password }}"), visible to the '
                "gateways and the Redis hosts (group_vars/all)."
            )
    budget = _int(v["gateway_service_redis_lookup_budget_ms"])
    if not 1 <= budget <= 10000:
        yield (
            "gateway_service_redis_lookup_budget_ms must be 1 to 10000 ms (the longest a cache "
            f"lookup may add to a request); got {v['gateway_service_redis_lookup_budget_ms']}."
        )


def gateway_service_cache(v: Any, groups: Groups) -> Iterator[str]:
    if not _gateway_service_on(v):
        return
    ttl = v["gateway_service_cache_ttl_seconds"]
    max_ttl = v["gateway_service_cache_max_ttl_seconds"]
    if not _integer(ttl) or _int(ttl) <= 0:
        yield f"gateway_service_cache_ttl_seconds must be a positive number of seconds; got {ttl}."
    elif not _integer(max_ttl) or _int(max_ttl) < _int(ttl):
        yield (
            "gateway_service_cache_max_ttl_seconds must be at least gateway_service_cache_ttl_"
            f"seconds ({ttl}); got {max_ttl}."
        )
    for name in ("gateway_service_cache_max_entry_bytes", "gateway_service_max_body_bytes"):
        if not _integer(v[name]) or _int(v[name]) <= 0:
            yield f"{name} must be a positive number of bytes; got {v[name]}."
    if (
        not _integer(v["gateway_service_cache_lease_ms"])
        or _int(v["gateway_service_cache_lease_ms"]) < 0
    ):
        yield "gateway_service_cache_lease_ms must be 0 (no lease) or more milliseconds."
    paths = v["gateway_service_cache_paths"] or []
    bad = [path for path in paths if not _match(r"^/v1/[A-Za-z0-9/_.-]+$", path)]
    if bad:
        yield (
            "gateway_service_cache_paths must be API paths such as /v1/chat/completions; "
            f"bad: {bad}."
        )
    excluded = sorted(set(map(str, v["gateway_service_cache_excluded_fields"] or [])))
    wrong = [field for field in excluded if field in _GATEWAY_KEY_FIELDS]
    if wrong:
        yield (
            f"gateway_service_cache_excluded_fields may not leave {wrong} out of the cache key: "
            "they change the answer, so cached answers would be replayed for other requests."
        )


def _similarity_ok(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1


def _served_models(v: Any, groups: Groups) -> dict[str, str] | None:
    """The models the engine hosts serve (served name -> task), as the engine role computes
    them; None when an engine host's own input is wrong (its rules say why)."""
    inventory = set(groups.get("all") or [])
    served: dict[str, str] = {}
    for host in groups.get("engine_nodes") or []:

        def peers(other: str) -> dict[str, Any]:
            if inventory and other not in inventory:
                raise KeyError(other)
            return engine_settings(v.peer(other, "engine"))

        try:
            instances = _engine_instances.host_instances(
                host, engine_settings(v.peer(host, "engine")), peers
            )
        except (_engine_instances.EngineInputError, KeyError, VariableError):
            return None
        for instance in instances:
            if instance.get("serves", True):
                model = instance["model_settings"]["engine_model"]
                served[instance["model"]] = str(model.get("task") or "generate")
    return served


def gateway_service_semantic(v: Any, groups: Groups) -> Iterator[str]:
    """The semantic cache: its tenants and thresholds, and an embedding model the site
    serves (the Redis 8 check runs on the Redis hosts, which know their release)."""
    if not _gateway_service_on(v):
        return
    tenants = v["gateway_service_semantic_tenants"] or {}
    if not tenants:
        return
    if not _bool(v["gateway_service_cache_enabled"]):
        yield (
            "gateway_service_semantic_tenants is set but gateway_service_cache_enabled is false: "
            "the semantic cache answers from the exact cache's entries."
        )
    floor = v["gateway_service_semantic_threshold_floor"]
    threshold = v["gateway_service_semantic_threshold"]
    for name, value in (
        ("gateway_service_semantic_threshold_floor", floor),
        ("gateway_service_semantic_threshold", threshold),
    ):
        if not _similarity_ok(value):
            yield f"{name} must be a cosine similarity above 0 and at most 1; got {value!r}."
    if _similarity_ok(floor) and _similarity_ok(threshold) and threshold < floor:
        yield (
            f"gateway_service_semantic_threshold ({threshold}) is below "
            f"gateway_service_semantic_threshold_floor ({floor}): the floor is the lowest "
            "similarity the site accepts."
        )
    served = _served_models(v, groups)
    for tenant, settings in tenants.items():
        name = f"gateway_service_semantic_tenants['{tenant}']"
        if settings is None:
            continue
        if not isinstance(settings, Mapping) or set(settings) - {"models", "threshold"}:
            yield f"{name} must be a mapping with models (a list) and threshold, or empty."
            continue
        own = settings.get("threshold")
        if own is not None and (not _similarity_ok(own) or (_similarity_ok(floor) and own < floor)):
            yield (
                f"{name}.threshold must be a cosine similarity from the floor "
                f"(gateway_service_semantic_threshold_floor, {floor}) to 1; got {own!r}: a "
                "tenant may raise the threshold, never lower it."
            )
        models = settings.get("models") or []
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            yield f"{name}.models must be a list of served model names; got {models!r}."
        elif served is not None:
            unknown = [model for model in models if model not in served]
            if unknown:
                yield f"{name}.models: {unknown} are not served at this site."
    model = str(v["gateway_service_semantic_embedding_model"] or "")
    dimensions = v["gateway_service_semantic_dimensions"]
    if not _integer(dimensions) or not 1 <= _int(dimensions) <= 65536:
        yield (
            "gateway_service_semantic_dimensions must be the embedding model's dimension "
            f"(384 for all-MiniLM-L6-v2); got {dimensions!r}."
        )
    timeout = v["gateway_service_semantic_timeout_ms"]
    if not _integer(timeout) or not 1 <= _int(timeout) <= 10000:
        yield (
            "gateway_service_semantic_timeout_ms must be 1 to 10000 ms (the longest an "
            f"embedding may add to a miss); got {timeout!r}."
        )
    if not model:
        yield (
            "gateway_service_semantic_embedding_model is empty: name the served embedding "
            "model (an engine instance whose engine_model has task: embed)."
        )
    elif served is not None and served.get(model) != "embed":
        embedding = sorted(name for name, task in served.items() if task == "embed")
        reason = (
            "is not served at this site"
            if model not in served
            else "is not an embedding model (engine_model.task: embed)"
        )
        yield (
            f"gateway_service_semantic_embedding_model: {model!r} {reason}; served embedding "
            f"models: {embedding or 'none'}."
        )


def gateway_service_request_audit(v: Any, groups: Groups) -> Iterator[str]:
    if not _gateway_service_on(v):
        return
    days = v["gateway_service_request_audit_retention_days"]
    if not _integer(days) or _int(days) < 1:
        yield (
            "gateway_service_request_audit_retention_days must be 1 or more days (how long "
            f"request records are kept); got {days}."
        )
    elif _integer(v["gateway_service_cache_max_ttl_seconds"]) and _int(days) * 86400 < _int(
        v["gateway_service_cache_max_ttl_seconds"]
    ):
        yield (
            f"gateway_service_request_audit_retention_days ({days}) is shorter than "
            "gateway_service_cache_max_ttl_seconds: cached answers would outlive the records of "
            "the requests that made them."
        )
    tenants = [str(tenant) for tenant in v["gateway_service_request_audit_content_tenants"] or []]
    content_days = v["gateway_service_request_audit_content_retention_days"]
    if not _integer(content_days) or _int(content_days) < 1:
        yield (
            "gateway_service_request_audit_content_retention_days must be 1 or more days (how "
            f"long prompt and answer text is kept); got {content_days}."
        )
    elif _integer(days) and _int(content_days) > _int(days):
        yield (
            f"gateway_service_request_audit_content_retention_days ({content_days}) is longer than "
            f"gateway_service_request_audit_retention_days ({days}): text would outlive the "
            "records that say who asked it."
        )
    elif (
        tenants
        and _integer(v["gateway_service_cache_max_ttl_seconds"])
        and _int(content_days) * 86400 < _int(v["gateway_service_cache_max_ttl_seconds"])
    ):
        yield (
            f"gateway_service_request_audit_content_retention_days ({content_days}) is shorter "
            "than gateway_service_cache_max_ttl_seconds: cached answers, which are text too, "
            "would outlive the text retention."
        )
    if not tenants:
        return
    if not _bool(v["gateway_service_request_audit"]):
        yield (
            "gateway_service_request_audit_content_tenants is set but gateway_service_request_"
            "audit is false: content is logged only in request records."
        )
    key = v["gateway_service_request_audit_pseudonymisation_key"]
    if len(str(key or "").encode("utf-8")) < 32:
        yield (
            "gateway_service_request_audit_pseudonymisation_key must hold 32 bytes or more (put "
            "it in the vault) when gateway_service_request_audit_content_tenants is set: users "
            "are pseudonymised in content logs."
        )
    if v.defined("haproxy_api_keys") and isinstance(v["haproxy_api_keys"], Mapping):
        unknown = sorted(set(tenants) - set(map(str, v["haproxy_api_keys"])))
        if unknown:
            yield (
                "gateway_service_request_audit_content_tenants names tenants without an API key "
                f"in haproxy_api_keys: {unknown}."
            )


RULES: dict[str, tuple[Rule, ...]] = {
    "common": (common_plaintext_links,),
    "firewall": (firewall,),
    "data_volume": (data_volume_unlock, data_volume_volumes),
    "model_store": (model_store_path, model_store_mode),
    "audit": (audit_retention, audit_journal, audit_log_hosts, audit_auditd),
    "node_exporter": (node_exporter_checksums, node_exporter_listen_address, node_exporter_tls),
    "prometheus": (
        prometheus_durations,
        prometheus_thresholds,
        prometheus_scrape_overrides,
        prometheus_alertmanager_receivers,
        prometheus_alertmanager_default_receiver,
        prometheus_web,
        prometheus_plaintext_scrapes,
    ),
    "nvidia_driver": (
        nvidia_driver_plan,
        nvidia_driver_mirror_key,
        nvidia_driver_urls,
        nvidia_driver_imex_rack,
        nvidia_driver_detected_profile,
    ),
    "cuda_toolkit": (
        cuda_toolkit_release,
        cuda_toolkit_package_version,
        cuda_toolkit_mirror_key,
        cuda_toolkit_urls,
    ),
    "nccl": (nccl_cuda_major, nccl_tests_source),
    "container_runtime": (
        container_runtime_toolkit_version,
        container_runtime_nvidia_mirror_key,
        container_runtime_docker_ce_mirror_key,
        container_runtime_urls,
        container_runtime_podman_default_runtime,
    ),
    "dcgm": (
        dcgm_versions,
        dcgm_cuda_major,
        dcgm_exporter_listen_address,
        dcgm_exporter_extra_counters,
        dcgm_exporter_tls,
        dcgm_exporter_password_hashes,
    ),
    "gpu_validate": (
        gpu_validate_skip_gates,
        gpu_validate_profile,
        gpu_validate_container_gate,
        gpu_validate_nccl_floor,
        gpu_validate_report_dir,
    ),
    "engine": (
        engine_mode,
        engine_tls,
        engine_instances,
        engine_span,
        engine_model_source,
        engine_container_image,
        engine_native_source,
        engine_native_devices,
        engine_health_gate,
        engine_api_key,
    ),
    "pki": (pki_provided, pki_names_and_lifetimes),
    "haproxy": (
        haproxy_api_keys,
        haproxy_rate_limits,
        haproxy_rate_limit_tenants,
        haproxy_client_certificates,
        haproxy_durations,
        haproxy_header_names,
        haproxy_replaced_variables,
        haproxy_engines,
        haproxy_routes,
        haproxy_balancing,
        haproxy_listeners,
        haproxy_tls_profile,
        haproxy_internal_tls,
    ),
    "keepalived": (
        keepalived_virtual_ip,
        keepalived_vrrp,
        keepalived_group,
        keepalived_interface,
        keepalived_auth_pass,
    ),
    "redis": (
        redis_passwords,
        redis_users,
        redis_cache_access,
        redis_memory,
        redis_network,
        redis_sentinel,
        redis_tls_profile,
        redis_exporter_tls,
        redis_exporter_local_port,
    ),
    "gateway_service": (
        gateway_service_wheel,
        gateway_service_redis,
        gateway_service_cache,
        gateway_service_request_audit,
        gateway_service_metrics_tls,
        gateway_service_semantic,
    ),
}
