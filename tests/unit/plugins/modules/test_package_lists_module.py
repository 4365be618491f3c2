"""onprem.llm.package_lists end to end: apt's directories in a temporary folder, apt faked."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.onprem.llm.plugins.modules import package_lists

INDEX = "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"


class Apt:
    """apt-get update fills the lists from `mirror`; apt-cache policy answers from the lists;
    dpkg-query and dpkg --compare-versions answer from `installed` (name: (status, version))."""

    def __init__(self, root: Path, mirror: dict[str, str], update_rc: int = 0) -> None:
        self.lists = root / "lists"
        self.lists.mkdir()
        (self.lists / "partial").mkdir()
        (self.lists / "lock").touch()
        self.mirror = mirror
        self.update_rc = update_rc
        self.commands: list[list[str]] = []
        self.installed: dict[str, tuple[str, str]] = {}

    def fill(self) -> None:
        (self.lists / INDEX).write_text("".join(f"Package: {name}\n\n" for name in self.mirror))

    def dpkg_query(self, names: list[str]) -> tuple[int, str, str]:
        # No names: every package dpkg knows, as dpkg-query --show prints them.
        names = names or list(self.installed)
        lines = [
            f"{name}\t{name}\t{self.installed[name][0]}\t{self.installed[name][1]}\n"
            for name in names
            if name in self.installed
        ]
        unknown = [name for name in names if name not in self.installed]
        errors = "".join(f"dpkg-query: no packages found matching {name}\n" for name in unknown)
        return (1 if unknown else 0), "".join(lines), errors

    def run_command(self, args: list[str], **_: Any) -> tuple[int, str, str]:
        self.commands.append(args)
        if args[0] == "dpkg-query":
            assert args[1:3] == ["--show", f"--showformat={package_lists.DPKG_QUERY_FORMAT}"]
            return self.dpkg_query(args[3:])
        if args[0] == "dpkg":
            # Versions in these tests are numbers with dots and a dash: ordered as dpkg would.
            assert args[1] == "--compare-versions" and args[3] == "ge"
            numbers = [tuple(int(part) for part in re.split(r"[.-]", arg)) for arg in args[2:5:2]]
            return (0 if numbers[0] >= numbers[1] else 1), "", ""
        if args[1] == "update":
            if self.update_rc:
                return (
                    self.update_rc,
                    "",
                    "E: Failed to fetch http://mirror.internal/dists/bookworm/InRelease  404\n",
                )
            self.fill()
            return 0, "", ""
        known = (self.lists / INDEX).read_text() if (self.lists / INDEX).exists() else ""
        if args[1] == "madison":
            return (
                0,
                "".join(
                    f"{name:>10} | {self.mirror[name]} | http://mirror.internal bookworm Packages\n"
                    for name in args[2:]
                    if f"Package: {name}\n" in known
                ),
                "",
            )
        blocks = [
            f"{name}:\n  Installed: (none)\n  Candidate: {self.mirror[name]}\n  Version table:\n"
            for name in args[2:]
            if f"Package: {name}\n" in known
        ]
        return 0, "".join(blocks), ""


@pytest.fixture
def apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Apt:
    fake = Apt(tmp_path, {"haproxy": "2.6.12-1+deb12u2", "python3-venv": "3.11.2-1+b1"})
    monkeypatch.setattr(package_lists, "LISTS_DIR", str(fake.lists))
    monkeypatch.setattr(
        package_lists, "UPDATE_STAMP", str(tmp_path / "periodic" / "update-success-stamp")
    )
    monkeypatch.setattr(
        AnsibleModule, "run_command", lambda module, args, **kw: fake.run_command(args, **kw)
    )
    monkeypatch.setattr(
        AnsibleModule, "get_bin_path", lambda module, name, required=False, opt_dirs=None: name
    )
    return fake


def run_module(capsys: pytest.CaptureFixture[str], **args: Any) -> tuple[int, dict[str, Any]]:
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        package_lists.main()
    return int(info.value.code or 0), json.loads(capsys.readouterr().out)


def test_lists_emptied_a_minute_ago_are_refreshed(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    # A freshly built image: the lists directory is new and empty.
    rc, result = run_module(capsys, packages=["python3-venv"])
    assert rc == 0, result
    assert (result["changed"], result["cache_updated"]) == (False, True)
    assert result["reason"] == "no package lists are present"
    assert apt.commands[1] == ["apt-get", "update", "-q", "-o", "APT::Update::Error-Mode=any"]
    assert os.path.exists(package_lists.UPDATE_STAMP)


def test_second_run_reads_the_stamp_and_does_nothing(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    run_module(capsys, packages=["python3-venv"])
    apt.commands.clear()
    rc, result = run_module(capsys, packages=["python3-venv", "haproxy=2.6.12-1+deb12u2"])
    assert rc == 0, result
    assert result["cache_updated"] is False
    assert [command[1] for command in apt.commands if command[0] == "apt-cache"] == ["policy"]


def test_a_package_from_a_new_source_refreshes_fresh_lists(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    run_module(capsys, packages=["haproxy"])
    apt.mirror["docker.io"] = "20.10.24+dfsg1-1+b3"  # a source added since the last refresh
    rc, result = run_module(capsys, packages=["docker.io"])
    assert rc == 0, result
    assert result["cache_updated"] is True
    assert "docker.io" in result["reason"]


def test_a_package_no_source_offers_fails_naming_it(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_module(capsys, packages=["haproxy", "nvidia-open-575"])
    assert rc == 1
    assert result["failed"] is True
    assert "no configured package source offers nvidia-open-575 after a refresh" in result["msg"]


def test_in_check_mode_a_package_no_source_offers_is_returned_not_failed(
    apt: Apt, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check run on a fresh host: the repository an earlier task would add is not there."""
    warnings: list[str] = []
    monkeypatch.setattr(package_lists.AnsibleModule, "warn", lambda _, text: warnings.append(text))
    packages = ["haproxy", "nvidia-open-575"]
    rc, result = run_module(capsys, packages=packages, _ansible_check_mode=True)
    assert rc == 0, result
    assert result["missing"] == ["nvidia-open-575"]
    assert warnings == [
        "check mode: no configured package source offers nvidia-open-575 yet; the tasks that"
        " install and configure them are not checked"
    ]
    rc, result = run_module(capsys, packages=["haproxy"], _ansible_check_mode=True)
    assert (rc, result.get("missing")) == (0, []), result


def test_a_failed_refresh_fails_the_task(
    tmp_path: Path, apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    apt.update_rc = 100
    rc, result = run_module(capsys, packages=["haproxy"])
    assert rc == 1
    assert result["msg"].startswith("apt-get update failed: E: Failed to fetch")


def test_old_lists_refresh_but_not_in_check_mode(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    run_module(capsys, packages=["haproxy"])
    os.utime(package_lists.UPDATE_STAMP, (0, 0))
    apt.commands.clear()
    rc, result = run_module(capsys, packages=["haproxy"], _ansible_check_mode=True)
    assert (rc, result["cache_updated"]) == (0, False)
    rc, result = run_module(capsys, packages=["haproxy"], valid_time=3600)
    assert (rc, result["cache_updated"], result["reason"]) == (
        0,
        True,
        "package lists are older than 3600 s",
    )


def test_a_negative_valid_time_is_refused(apt: Apt, capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_module(capsys, valid_time=-1)
    assert rc == 1
    assert result["msg"] == "valid_time must be 0 or more, got -1"
    assert apt.commands == []


# dpkg's view of a host with one package installed and one on hold.
INSTALLED_AND_HELD = {
    "haproxy": ("install ok installed", "2.6.12"),
    "jq": ("hold ok installed", "1.6"),
}


def test_installed_packages_skip_the_lists_and_the_install(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    """A no-op run: nothing to install, so old or even absent lists are not refreshed."""
    apt.installed = dict(INSTALLED_AND_HELD)
    rc, result = run_module(capsys, packages=["haproxy=2.6.12", "jq>=1.5", "jq"])
    assert rc == 0, result
    assert (result["installed"], result["cache_updated"], result["missing"]) == (True, False, [])
    assert result["held"] == ["jq"]
    assert result["reason"] == "every package is installed at a version it accepts"
    assert [command[0] for command in apt.commands] == ["dpkg-query", "dpkg"]


@pytest.mark.parametrize(
    ("packages", "installed"),
    [
        (["haproxy=2.6.13"], {"haproxy": ("install ok installed", "2.6.12")}),
        (["haproxy>=2.7"], {"haproxy": ("install ok installed", "2.6.12")}),
        (["haproxy"], {"haproxy": ("install ok half-configured", "2.6.12")}),
        (["haproxy"], {"haproxy": ("deinstall ok config-files", "2.6.12")}),
        (["haproxy", "python3-venv"], {"haproxy": ("install ok installed", "2.6.12")}),
        (["haproxy=2.7.*"], {"haproxy": ("install ok installed", "2.6.12")}),
    ],
    ids=[
        "other-version",
        "older",
        "half-configured",
        "config-files",
        "one-absent",
        "other-pattern",
    ],
)
def test_anything_apt_would_install_leaves_installed_false(
    apt: Apt,
    capsys: pytest.CaptureFixture[str],
    packages: list[str],
    installed: dict[str, tuple[str, str]],
) -> None:
    apt.installed = installed
    apt.mirror["haproxy"] = "2.6.13"
    rc, result = run_module(capsys, packages=packages)
    assert rc == 0, result
    assert (result["installed"], result["cache_updated"]) == (False, True)


def test_report_state_returns_every_package_from_one_query(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the action plugin keeps for the rest of the run: one dpkg-query, with no names."""
    apt.installed = {
        **INSTALLED_AND_HELD,
        "nvidia-open": ("hold ok installed", "575.57.08-1"),
        "chrony": ("deinstall ok config-files", "4.3-2"),
    }
    rc, result = run_module(capsys, packages=["haproxy", "jq"], report_state=True)
    assert rc == 0, result
    assert result["installed"] is True
    # held names the wanted packages only; the state holds every package on hold.
    assert result["held"] == ["jq"]
    assert result["package_state"] == {
        "installed": {"haproxy": "2.6.12", "jq": "1.6", "nvidia-open": "575.57.08-1"},
        "held": ["jq", "nvidia-open"],
    }
    assert apt.commands == [
        ["dpkg-query", "--show", f"--showformat={package_lists.DPKG_QUERY_FORMAT}"]
    ]


def test_without_report_state_no_state_is_returned(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    apt.installed = {"haproxy": ("install ok installed", "2.6.12")}
    rc, result = run_module(capsys, packages=["haproxy"])
    assert rc == 0, result
    assert "package_state" not in result


@pytest.mark.parametrize(
    ("offered", "installed"),
    [("580.126.09-1", True), ("580.126.09-2", False), ("580.126.20-1", True)],
    ids=["newest-installed", "newer-match-offered", "newer-version-outside-the-pattern"],
)
def test_a_version_pattern_is_installed_unless_a_newer_match_is_offered(
    apt: Apt, capsys: pytest.CaptureFixture[str], offered: str, installed: bool
) -> None:
    """The GPU roles pin nvidia-open=580.126.09-*: apt upgrades within the pattern only."""
    apt.installed = {"nvidia-open": ("hold ok installed", "580.126.09-1")}
    apt.mirror["nvidia-open"] = offered
    apt.fill()
    stamp = Path(package_lists.UPDATE_STAMP)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    rc, result = run_module(capsys, packages=["nvidia-open=580.126.09-*"])
    assert rc == 0, result
    assert result["installed"] is installed
    assert result["cache_updated"] is False
    assert ["apt-cache", "madison", "nvidia-open"] in apt.commands


def test_a_version_pattern_the_installed_version_misses_asks_no_madison(
    apt: Apt, capsys: pytest.CaptureFixture[str]
) -> None:
    apt.installed = {"nvidia-open": ("install ok installed", "575.57.08-1")}
    apt.mirror["nvidia-open"] = "580.126.09-1"
    apt.fill()
    rc, result = run_module(capsys, packages=["nvidia-open=580.126.09-*"])
    assert rc == 0, result
    assert result["installed"] is False
    assert not [command for command in apt.commands if command[1:2] == ["madison"]]
