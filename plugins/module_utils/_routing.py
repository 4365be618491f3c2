"""The gateway's routing table: for each model a client may name, the backend of its engines
and the cloud providers each data class may reach.

One computation from inventory variables, read by the HAProxy template (backends, maps), the
input validation (errors name the variable) and the tests. Engine instances come from
_engine_instances, so a model's backend holds the same servers whichever hosts are in the run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MODEL_BACKEND_PREFIX = "model_"
CLOUD_BACKEND_PREFIX = "cloud_"
ONPREM_ROUTE = "on-prem"
# models.map value of a model no engine serves (backend names start with MODEL_BACKEND_PREFIX).
CLOUD_ONLY = "cloud-only"
# Model names become map keys and header values: no whitespace, quotes, backslashes or '|'
# (the separator of tenant|model keys).
_MODEL_NAME = re.compile(r"^[^\s\"\\|#]{1,200}$")
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_REGION = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
_MODEL_FIELDS = frozenset({"cloud", "spill_over_queue", "data_classes", "engine_maxconn"})
_PROVIDER_FIELDS = frozenset({"url", "region", "api_key", "ca_file"})


class RoutingInputError(ValueError):
    """Routing input that cannot give a table; every message names its variable."""


def backend_name(model: str) -> str:
    """HAProxy backend of a model's engines: its name where HAProxy allows it, else a slug
    with a hash so that two names never share a backend."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")[:60]
    if slug != model or not slug:
        slug = f"{slug}-{hashlib.sha256(model.encode()).hexdigest()[:8]}".lstrip("-")
    return MODEL_BACKEND_PREFIX + slug


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _classes(data_classes: Any, default_class: Any, errors: list[str]) -> dict[str, list[str]]:
    if not isinstance(data_classes, Mapping) or not data_classes:
        errors.append(
            "haproxy_data_classes: expected a mapping of class name to {cloud_regions: [...]}, "
            f"got {data_classes!r}"
        )
        return {}
    classes: dict[str, list[str]] = {}
    for name, spec in data_classes.items():
        where = f"haproxy_data_classes.{name}"
        if not isinstance(name, str) or not _CLASS_NAME.match(name):
            errors.append(f"{where}: a class name is lowercase letters, digits, '-' or '_'")
            continue
        regions = spec.get("cloud_regions") if isinstance(spec, Mapping) else None
        if (
            not isinstance(spec, Mapping)
            or set(spec) - {"cloud_regions"}
            or not isinstance(regions, list)
            or not all(isinstance(r, str) and _REGION.match(r) for r in regions)
        ):
            errors.append(
                f"{where}: expected {{cloud_regions: [region, ...]}} ([] never leaves the "
                f'site, ["*"] any region), got {spec!r}'
            )
            continue
        classes[name] = list(regions)
    if classes.get("restricted"):
        errors.append(
            "haproxy_data_classes.restricted: restricted data never leaves the site; its "
            f"cloud_regions must be [], got {classes['restricted']}"
        )
    if default_class not in classes and not errors:
        errors.append(
            f"haproxy_default_data_class: {default_class!r} is not a class of "
            f"haproxy_data_classes ({', '.join(classes)})"
        )
    return classes


def _providers(providers: Any, ca_file: str, errors: list[str]) -> dict[str, dict[str, Any]]:
    if not isinstance(providers, Mapping):
        # Not echoed: it may hold API keys.
        errors.append(
            f"haproxy_cloud_providers: expected a mapping, got a {type(providers).__name__}"
        )
        return {}
    result: dict[str, dict[str, Any]] = {}
    for name, spec in providers.items():
        where = f"haproxy_cloud_providers.{name}"
        if not isinstance(name, str) or not _PROVIDER_NAME.match(name):
            errors.append(f"{where}: a provider name is lowercase letters, digits, '-' or '_'")
            continue
        if not isinstance(spec, Mapping) or set(spec) - _PROVIDER_FIELDS:
            errors.append(
                f"{where}: expected {{url, region, api_key, ca_file?}}, got "
                + (f"keys {sorted(spec)}" if isinstance(spec, Mapping) else type(spec).__name__)
            )
            continue
        url = str(spec.get("url") or "")
        parts = urlsplit(url)
        try:
            port = parts.port or 443
        except ValueError:
            port = 0
        if parts.scheme != "https" or not _HOSTNAME.match(parts.hostname or "") or not port:
            errors.append(
                f"{where}.url: expected an https:// URL of an OpenAI-compatible API (prompts "
                f"cross the internet), such as https://api.openai.com/v1, got {url!r}"
            )
            continue
        region = spec.get("region")
        if not isinstance(region, str) or not _REGION.match(region) or region == "*":
            errors.append(f"{where}.region: expected the provider's region name, got {region!r}")
            continue
        key = spec.get("api_key")
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
            errors.append(
                f"{where}.api_key: expected the provider's API key from the vault (one word), "
                "got none"
            )
            continue
        result[name] = {
            "name": name,
            "backend": CLOUD_BACKEND_PREFIX + name,
            "host": parts.hostname,
            "port": port,
            "path": parts.path.rstrip("/"),
            "region": region,
            "ca_file": str(spec.get("ca_file") or ca_file),
            "route": f"cloud:{name}",  # X-Route of its answers
        }
    return result


def _served(engines: Any, errors: list[str]) -> dict[str, list[dict[str, Any]]]:
    served: dict[str, list[dict[str, Any]]] = {}
    for engine in engines or []:
        if not isinstance(engine, Mapping) or not isinstance(engine.get("model"), str):
            errors.append(
                "haproxy_engines: every instance needs the model it serves (model: the name "
                f"clients send), got {engine!r}"
            )
            continue
        served.setdefault(engine["model"], []).append(dict(engine))
    for model, instances in served.items():
        if not _MODEL_NAME.match(model):
            errors.append(
                f"engine_served_model_name: {model!r} (served by "
                f"{', '.join(sorted(i.get('name', '?') for i in instances))}) may not hold "
                "whitespace, quotes, '\\', '|' or '#'"
            )
        settings = {
            json.dumps(i["model_settings"], sort_keys=True, default=str)
            for i in instances
            if "model_settings" in i
        }
        if len(settings) > 1:
            hosts = sorted({str(i.get("host", i.get("name"))) for i in instances})
            errors.append(
                f"engine_model: hosts {', '.join(hosts)} serve different models (or context "
                f"lengths) under one name {model!r}: one served name, one model; give the "
                "others their own engine_served_model_name"
            )
    return served


def routing_table(
    engines: Any,
    data_classes: Any,
    default_class: Any,
    providers: Any,
    models: Any,
    tenant_models: Any,
    tenants: Any,
    model_rate_limits: Any = None,
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt",
) -> dict[str, Any]:
    """The routing table, or RoutingInputError listing every problem found."""
    errors: list[str] = []
    classes = _classes(data_classes, default_class, errors)
    clouds = _providers(providers, ca_file, errors)
    served = _served(engines, errors)
    tenant_names = sorted(str(t) for t in (tenants or []))
    if not isinstance(models, Mapping):
        errors.append(f"haproxy_models: expected a mapping of model name to policy, got {models!r}")
        models = {}

    table: dict[str, dict[str, Any]] = {}
    for model in sorted(set(served) | set(models), key=str):
        where = f"haproxy_models.{model}"
        if not isinstance(model, str):
            errors.append(f"haproxy_models: model names are strings, got {model!r}: quote it")
            continue
        policy = models.get(model) or {}
        if not isinstance(policy, Mapping) or set(policy) - _MODEL_FIELDS:
            errors.append(
                f"{where}: expected {{cloud: [provider, ...], spill_over_queue?, "
                f"data_classes?, engine_maxconn?}}, got {policy!r}"
            )
            continue
        if model not in served and not _MODEL_NAME.match(str(model)):
            errors.append(
                f"{where}: a model name may not hold whitespace, quotes, '\\', '|' or '#'"
            )
            continue
        cloud = policy.get("cloud", [])
        problem = _names_problem(
            cloud, clouds, "provider names", "not in haproxy_cloud_providers",
            f"({', '.join(clouds) or 'none declared'})",
        )  # fmt: skip
        if problem:
            errors.append(f"{where}.cloud: {problem}")
            continue
        if model not in served and not cloud:
            errors.append(
                f"{where}: no engine serves {model!r} and it names no cloud provider: serve it "
                "(engine_model / engine_served_model_name of an engine_nodes host) or give cloud"
            )
            continue
        spill = policy.get("spill_over_queue")
        if spill is not None:
            if not _whole(spill) or spill < 1:
                errors.append(
                    f"{where}.spill_over_queue: expected a whole number of queued requests, at "
                    "least 1 (0 would send every request that may leave to the cloud), got "
                    f"{spill!r}"
                )
                continue
            if model not in served or not cloud:
                errors.append(
                    f"{where}.spill_over_queue: spill-over needs both engines serving the model "
                    "and a cloud provider to spill to"
                )
                continue
        maxconn = policy.get("engine_maxconn")
        if maxconn is not None and (not _whole(maxconn) or maxconn < 1 or model not in served):
            errors.append(
                f"{where}.engine_maxconn: expected a whole number of concurrent requests per "
                f"engine instance, at least 1, for a model engines serve; got {maxconn!r}"
            )
            continue
        allowed_classes = policy.get("data_classes", list(classes))
        if not isinstance(allowed_classes, list) or not all(
            isinstance(c, str) for c in allowed_classes
        ):
            errors.append(f"{where}.data_classes: expected a list of class names")
            continue
        undeclared = [c for c in allowed_classes if c not in classes]
        if undeclared:
            errors.append(
                f"{where}.data_classes: {', '.join(undeclared)} not declared in "
                f"haproxy_data_classes ({', '.join(classes)})"
            )
            continue
        per_class: dict[str, str] = {}
        for name in allowed_classes:
            regions = classes[name]
            for provider in cloud:
                if "*" in regions or clouds[provider]["region"] in regions:
                    per_class[name] = provider
                    break
        if "data_classes" in policy:
            for name in allowed_classes:
                if name not in per_class:
                    errors.append(
                        f"{where}.data_classes: class {name} may reach only regions "
                        f"{classes[name] or 'none (on premises only)'}, and none of its providers "
                        f"({', '.join(p + ' in ' + clouds[p]['region'] for p in cloud)}) is there"
                    )
        elif cloud and not per_class:
            errors.append(
                f"{where}.cloud: no data class may reach the region of "
                f"{', '.join(p + ' (' + clouds[p]['region'] + ')' for p in cloud)}: it would "
                "never be used; add the region to a class's cloud_regions or drop the provider"
            )
        table[model] = {
            "name": model,
            "backend": backend_name(model) if model in served else None,
            "servers": sorted(served.get(model, []), key=lambda e: str(e.get("name"))),
            "cloud": list(cloud),
            "spill_over_queue": spill,
            "engine_maxconn": maxconn,
            "classes": per_class,
        }

    backends: dict[str, str] = {}
    for entry in table.values():
        if entry["backend"]:
            other = backends.setdefault(entry["backend"], entry["name"])
            if other != entry["name"]:
                errors.append(
                    f"engine_served_model_name: {other!r} and {entry['name']!r} give one HAProxy "
                    "backend name; rename one"
                )

    allowed = _tenant_models(tenant_models, tenant_names, table, errors)
    limits = _model_rate_limits(model_rate_limits, tenant_names, table, errors)
    if errors:
        raise RoutingInputError("\n".join(errors))
    return {
        "models": table,
        "providers": clouds,
        "classes": classes,
        "default_class": default_class,
        "tenant_models": allowed,
        "model_rate_limits": limits,
        "onprem_route": ONPREM_ROUTE,
        "cloud_only": CLOUD_ONLY,
        "cloud_backend_prefix": CLOUD_BACKEND_PREFIX,
    }


def _names_problem(
    names: Any, known: Mapping[str, Any], what: str, unknown_means: str, hint: str
) -> str | None:
    """What is wrong with a list of names that must all be known, or None."""
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return f"expected a list of {what}, got {names!r}"
    unknown = [name for name in names if name not in known]
    if unknown:
        return f"{', '.join(unknown)} {unknown_means} {hint}"
    return None


def _tenant_models(
    tenant_models: Any, tenants: list[str], table: Mapping[str, Any], errors: list[str]
) -> dict[str, list[str]]:
    if not isinstance(tenant_models, Mapping):
        errors.append(
            f"haproxy_tenant_models: expected a mapping of tenant to models, got {tenant_models!r}"
        )
        return {}
    result = {tenant: sorted(table) for tenant in tenants}
    for tenant, names in tenant_models.items():
        where = f"haproxy_tenant_models.{tenant}"
        if tenant not in tenants:
            errors.append(f"{where}: no tenant {tenant!r} in haproxy_api_keys")
            continue
        problem = _names_problem(
            names, table, "model names", "is neither served by an engine nor a cloud model of "
            "haproxy_models", f"(known: {', '.join(sorted(table)) or 'none'})",
        )  # fmt: skip
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        result[tenant] = sorted(set(names))
    return result


def _model_rate_limits(
    limits: Any, tenants: list[str], table: Mapping[str, Any], errors: list[str]
) -> dict[str, int]:
    """{tenant|model: requests per period}; tenant '*' is every tenant's default."""
    if limits is None:
        return {}
    if not isinstance(limits, Mapping):
        errors.append(
            f"haproxy_model_rate_limits: expected {{tenant: {{model: n}}}}, got {limits!r}"
        )
        return {}
    result: dict[str, int] = {}
    for tenant, per_model in limits.items():
        where = f"haproxy_model_rate_limits.{tenant}"
        if tenant != "*" and tenant not in tenants:
            errors.append(
                f"{where}: no tenant {tenant!r} in haproxy_api_keys ('*' is every tenant)"
            )
            continue
        if not isinstance(per_model, Mapping):
            errors.append(f"{where}: expected {{model: requests per period}}, got {per_model!r}")
            continue
        for model, value in per_model.items():
            if model not in table:
                errors.append(f"{where}.{model}: no such model (known: {', '.join(sorted(table))})")
            elif not _whole(value) or value < 1:
                errors.append(f"{where}.{model}: expected a positive whole number, got {value!r}")
            else:
                result[f"{tenant}|{model}"] = value
    return result


def models_list(table: Mapping[str, Any], tenant: str) -> str:
    """GET /v1/models for one tenant, as OpenAI shapes it (compact JSON, one line)."""
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "on-premises" if table["models"][name]["backend"] else "cloud",
        }
        for name in table["tenant_models"].get(tenant, [])
    ]
    return json.dumps({"object": "list", "data": data}, separators=(",", ":"))


def route_maps(table: Mapping[str, Any]) -> dict[str, str]:
    """The HAProxy map files of a routing table, by file name: one line per key."""
    models = table["models"]
    lines: dict[str, list[str]] = {
        # model -> backend of its engines, or CLOUD_ONLY
        "models.map": [
            f"{name} {entry['backend'] or CLOUD_ONLY}" for name, entry in models.items()
        ],
        # tenant|model -> 1 where the tenant may use the model
        "model_access.map": [
            f"{tenant}|{name} 1"
            for tenant, names in sorted(table["tenant_models"].items())
            for name in names
        ],
        # model|class -> the cloud backend that class may use for the model
        "model_clouds.map": [
            f"{name}|{data_class} {table['providers'][provider]['backend']}"
            for name, entry in models.items()
            for data_class, provider in sorted(entry["classes"].items())
        ],
        # model -> queued requests beyond which classes that may leave spill to the cloud
        "model_spill.map": [
            f"{name} {entry['spill_over_queue']}"
            for name, entry in models.items()
            if entry["spill_over_queue"]
        ],
        # tenant|model -> requests per period ('*' for every tenant)
        "model_rate_limits.map": [
            f"{key} {limit}" for key, limit in sorted(table["model_rate_limits"].items())
        ],
        # tenant -> GET /v1/models
        "models_list.map": [
            f"{tenant} {models_list(table, tenant)}" for tenant in sorted(table["tenant_models"])
        ],
    }
    return {name: "".join(f"{line}\n" for line in entries) for name, entries in lines.items()}
