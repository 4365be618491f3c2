"""The block devices a host's roles keep data on, declared by those roles.

A role that keeps data (the model store, Prometheus' TSDB, Redis' persistence files, the log
receiver's files) declares <role>_data_volumes, built from its own variables: the directory, the
device for it, and whether the device is encrypted. The data_volume role formats, opens and
mounts every declared volume of a host before the roles run; data_volume_volumes adds the
host's own (container storage, scratch). A volume without a device is a plain directory and is
left to its role.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

FSTYPES = ("xfs", "ext4")
ENCRYPTIONS = ("none", "luks")
LUKS_KEY_MIN_LENGTH = 32
DEFAULTS: dict[str, Any] = {
    "device": "",
    "fstype": "xfs",
    "mount_options": "defaults,noatime",
    "encryption": "none",
    "luks_name": "",
    "luks_key": "",
    "luks_format_force": False,
    "variable_prefix": "",
}
FIELDS = ("path", *DEFAULTS)
_MAPPER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class DataVolumeError(ValueError):
    """A declared volume that cannot be set up; the message names the variable."""


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "1", "on")
    return bool(value)


def _mapper_name(path: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", path.strip("/")).strip("-")
    return f"onprem-llm-{slug or 'data'}"


class _Volume:
    """One declared volume and how to name its settings in a message."""

    def __init__(self, where: str, raw: Mapping[str, Any]) -> None:
        self.where = where
        self.raw = raw
        self.prefix = str(raw.get("variable_prefix") or "")

    def name(self, field: str) -> str:
        """The variable an operator sets: <prefix>_<field>, or the declaration's own field."""
        if self.prefix:
            return f"{self.prefix}_{field}"
        return f"{self.where}.{field}"


def _problems(volume: _Volume, value: dict[str, Any]) -> Iterator[str]:
    path = value["path"]
    # A role's own path variable is checked by the role's rules.
    bad_path = not (os.path.isabs(path) and path.rstrip("/") and "/../" not in path + "/")
    if bad_path and not volume.prefix:
        yield f"{volume.name('path')} must be an absolute path other than /, got '{path}'."
    device = value["device"]
    if device and not device.startswith("/dev/"):
        yield f"{volume.name('device')} must be empty or a /dev/ path, got '{device}'."
    if value["fstype"] not in FSTYPES:
        yield (
            f"{volume.name('fstype')} must be one of {', '.join(FSTYPES)}, got '{value['fstype']}'."
        )
    if value["encryption"] not in ENCRYPTIONS:
        yield (
            f"{volume.name('encryption')} must be one of {', '.join(ENCRYPTIONS)}, "
            f"got '{value['encryption']}'."
        )
    if value["encryption"] != "luks":
        return
    if not device:
        yield (
            f"{volume.name('encryption')}: luks needs {volume.name('device')}, the block device "
            "to encrypt; a plain directory cannot be."
        )
    if not _MAPPER_NAME.match(value["luks_name"]):
        yield (
            f"{volume.name('luks_name')} must be letters, digits, '_' or '-' (a /dev/mapper/ "
            f"name), got '{value['luks_name']}'."
        )
    if len(value["luks_key"]) < LUKS_KEY_MIN_LENGTH:
        yield (
            f"{volume.name('luks_key')} must hold {LUKS_KEY_MIN_LENGTH} characters or more for "
            f"{volume.name('encryption')}: luks; put a random key in the vault."
        )


def _normalized(volume: _Volume) -> dict[str, Any]:
    raw = volume.raw
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
    if unknown:
        raise DataVolumeError(
            f"{volume.where} has unknown keys {unknown}; a volume takes {', '.join(FIELDS)}."
        )
    if "path" not in raw:
        raise DataVolumeError(f"{volume.where} needs a path, the directory to mount it at.")
    value = {**DEFAULTS, **{key: item for key, item in raw.items() if item is not None}}
    for field in FIELDS:
        if field != "luks_format_force":
            value[field] = str(value[field])
    value["luks_format_force"] = _bool(value["luks_format_force"])
    value["luks_name"] = value["luks_name"] or _mapper_name(value["path"])
    problems = list(_problems(volume, value))
    if problems:
        raise DataVolumeError(" ".join(problems))
    value["declared_by"] = volume.where
    return value


def data_volumes(declared: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The volumes with a device, from {variable: list of volumes}, checked: each with the
    variable that declared it (declared_by). Raises DataVolumeError naming the variable."""
    volumes: list[dict[str, Any]] = []
    for variable, items in declared.items():
        if not isinstance(items, list):
            raise DataVolumeError(
                f"{variable} must be a list of volumes, got a {type(items).__name__}."
            )
        for index, raw in enumerate(items):
            where = f"{variable}[{index}]"
            if not isinstance(raw, Mapping):
                raise DataVolumeError(f"{where} must be a dict with a path and a device.")
            value = _normalized(_Volume(where, raw))
            if value["device"]:
                volumes.append(value)
    _check_unique(volumes)
    return volumes


def _check_unique(volumes: list[dict[str, Any]]) -> None:
    for field, what in (
        ("path", "mount point"),
        ("device", "device"),
        ("luks_name", "/dev/mapper/ name"),
    ):
        seen: dict[str, str] = {}
        for volume in volumes:
            if field == "luks_name" and volume["encryption"] != "luks":
                continue
            key = volume[field].rstrip("/") if field == "path" else volume[field]
            if key in seen:
                raise DataVolumeError(
                    f"{seen[key]} and {volume['declared_by']} name the same {what} "
                    f"'{volume[field]}': one volume per {what} on a host."
                )
            seen[key] = volume["declared_by"]
