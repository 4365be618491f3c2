"""onprem.llm.systemd_sandbox: the sandbox settings of every service unit this collection writes,
from one place, so that each unit states only what its service needs beyond the common floor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

_ACCOUNTS = ("service", "root")
_NETWORK_FAMILIES = {"AF_INET", "AF_INET6"}


def _strings(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise AnsibleFilterError(f"systemd_sandbox: {name} must be a list, got {value!r}")
    return [str(item) for item in value]


def systemd_sandbox(
    account: str,
    read_write_paths: Sequence[str] = (),
    devices: Sequence[str] | None = None,
    capabilities: Sequence[str] = (),
    address_families: Sequence[str] = ("AF_INET", "AF_INET6", "AF_UNIX"),
    system_calls: Sequence[str] = (),
    denied_system_calls: Sequence[str] = ("@privileged", "@resources"),
    write_execute: bool = False,
    supplementary_groups: Sequence[str] = (),
    process_files_only: bool = False,
    other_processes: bool = False,
    kernel_log: bool = False,
) -> str:
    """The [Service] lines of the sandbox; `account` is "service" (a User= of its own) or "root"."""
    if account not in _ACCOUNTS:
        raise AnsibleFilterError(
            f"systemd_sandbox: account must be one of {_ACCOUNTS}, got {account!r}"
        )
    families = _strings("address_families", address_families)
    lines = [
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        *(f"ReadWritePaths={path}" for path in _strings("read_write_paths", read_write_paths)),
        "ProtectHome=true",
        "PrivateTmp=true",
        "PrivateMounts=true",
    ]
    if devices is None:
        lines.append("PrivateDevices=true")
    else:
        # Accelerators: every other device node stays out of reach.
        lines.append("DevicePolicy=closed")
        lines += [f"DeviceAllow={device}" for device in _strings("devices", devices)]
    if not _NETWORK_FAMILIES.intersection(families):
        # Local sockets only (a client of a daemon's Unix socket).
        lines += ["PrivateNetwork=true", "IPAddressDeny=any"]
    lines += [
        "ProtectKernelTunables=true",
        "ProtectKernelModules=true",
        *([] if kernel_log else ["ProtectKernelLogs=true"]),
        "ProtectControlGroups=true",
        "ProtectClock=true",
        "ProtectHostname=true",
    ]
    if not other_processes:
        lines.append("ProtectProc=invisible")
    if process_files_only:
        lines.append("ProcSubset=pid")
    lines += [
        "RestrictNamespaces=true",
        "RestrictRealtime=true",
        "RestrictSUIDSGID=true",
        "LockPersonality=true",
    ]
    if not write_execute:
        lines.append("MemoryDenyWriteExecute=true")
    lines += [
        f"RestrictAddressFamilies={' '.join(families)}"
        if families
        else "RestrictAddressFamilies=none",
        f"CapabilityBoundingSet={' '.join(_strings('capabilities', capabilities))}",
        "SystemCallArchitectures=native",
        " ".join(["SystemCallFilter=@system-service", *_strings("system_calls", system_calls)]),
    ]
    denied = _strings("denied_system_calls", denied_system_calls)
    if denied:
        lines.append(f"SystemCallFilter=~{' '.join(denied)}")
    # A call outside the filter fails with EPERM (and is logged by the service), no SIGSYS kill.
    lines.append("SystemCallErrorNumber=EPERM")
    groups = _strings("supplementary_groups", supplementary_groups)
    if groups:
        lines.append(f"SupplementaryGroups={' '.join(groups)}")
    if account == "service":
        lines.append("RemoveIPC=true")
    lines.append("UMask=0077")
    return "\n".join(lines)


class FilterModule:
    """systemd unit filters."""

    def filters(self) -> dict[str, Any]:
        return {"systemd_sandbox": systemd_sandbox}
