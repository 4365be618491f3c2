"""When apt's package lists are refreshed: absent, lacking a wanted package, or old."""

from __future__ import annotations

import re

import pytest
from ansible_collections.onprem.llm.plugins.module_utils._package_lists import (
    decide,
    held_packages,
    index_files,
    not_installed,
    package_names,
    parse_dpkg_status,
    parse_madison,
    parse_policy,
    pattern_pins,
    settled_pins,
    unavailable,
)

# `LC_ALL=C apt-cache policy hello nosuchpackage bash python3:amd64` on Debian 12: an unknown
# package gets no block, an architecture-qualified one is printed without its qualifier.
POLICY = """\
hello:
  Installed: (none)
  Candidate: 2.10-3
  Version table:
     2.10-3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
python3:
  Installed: 3.11.2-1+b1
  Candidate: 3.11.2-1+b1
  Version table:
 *** 3.11.2-1+b1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
"""
# The same for an installed package whose lists were emptied, and for a virtual package.
POLICY_NO_LISTS = """\
haproxy:
  Installed: 2.6.12-1+deb12u2
  Candidate: 2.6.12-1+deb12u2
  Version table:
 *** 2.6.12-1+deb12u2 100
        100 /var/lib/dpkg/status
python3-venv:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


def test_only_package_indexes_count_as_lists() -> None:
    entries = [
        "lock",
        "partial",
        "auxfiles",
        "deb.debian.org_debian_dists_bookworm_InRelease",
        "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
        "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en",
        "mirror_nvidia_dists_noble_main_binary-arm64_Packages.lz4",
    ]
    assert index_files(entries) == [
        "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
        "mirror_nvidia_dists_noble_main_binary-arm64_Packages.lz4",
    ]
    assert index_files(["lock", "partial", "auxfiles"]) == []


def test_versions_and_local_files_are_stripped_from_names() -> None:
    assert package_names(
        [
            "docker-ce=5:27.3.1-1~debian.12~bookworm",
            "nvidia-driver>=570",
            " chrony ",
            "/tmp/x.deb",
            "",
        ]
    ) == ["docker-ce", "nvidia-driver", "chrony"]
    assert package_names(["https://mirror/pool/a.deb", "libnccl2=2.23.4-1+cuda12.8"]) == [
        "libnccl2"
    ]


def test_policy_marks_installed_or_installable_packages() -> None:
    assert parse_policy(POLICY) == {"hello": True, "bash": True, "python3": True}
    assert parse_policy(POLICY_NO_LISTS) == {"haproxy": True, "python3-venv": False}


def test_unknown_and_candidate_less_packages_are_unavailable() -> None:
    policy = parse_policy(POLICY + POLICY_NO_LISTS)
    assert unavailable(
        ["hello", "python3:amd64", "nosuchpackage", "python3-venv", "haproxy"], policy
    ) == [
        "nosuchpackage",
        "python3-venv",
    ]


def test_emptied_lists_refresh_whatever_their_age() -> None:
    # The regression: lists emptied a minute ago (directory mtime recent) used to count as fresh.
    decision = decide(index_count=0, lists_age=60, missing=[], valid_time=3600, check_mode=False)
    assert decision.refresh
    assert decision.reason == "no package lists are present"


def test_a_missing_package_refreshes_fresh_lists() -> None:
    decision = decide(
        index_count=3, lists_age=60, missing=["docker.io"], valid_time=3600, check_mode=False
    )
    assert decision.refresh
    assert "docker.io" in decision.reason


@pytest.mark.parametrize("check_mode", [False, True])
def test_fresh_complete_lists_are_left_alone(check_mode: bool) -> None:
    assert not decide(
        index_count=3, lists_age=60, missing=[], valid_time=3600, check_mode=check_mode
    ).refresh


def test_old_lists_refresh_except_in_check_mode() -> None:
    assert decide(
        index_count=3, lists_age=7200, missing=[], valid_time=3600, check_mode=False
    ).refresh
    assert decide(
        index_count=3, lists_age=None, missing=[], valid_time=3600, check_mode=False
    ).refresh
    assert not decide(
        index_count=3, lists_age=7200, missing=[], valid_time=3600, check_mode=True
    ).refresh
    # What a check run cannot do without stays a refresh.
    assert decide(
        index_count=0, lists_age=7200, missing=[], valid_time=3600, check_mode=True
    ).refresh
    assert decide(
        index_count=3, lists_age=60, missing=["x"], valid_time=3600, check_mode=True
    ).refresh


DPKG_QUERY_OUTPUT = (
    "haproxy\thaproxy\tinstall ok installed\t2.6.12-1+deb12u2\n"
    "libc6:amd64\tlibc6\tinstall ok installed\t2.36-9+deb12u14\n"
    "nvidia-open\tnvidia-open\thold ok installed\t580.95.05-1\n"
    "cuda-toolkit-13-0\tcuda-toolkit-13-0\tinstall ok half-configured\t13.0.2-1\n"
    "docker.io\tdocker.io\tdeinstall ok config-files\t20.10.24+dfsg1-1+b3\n"
)


def test_dpkg_status_keeps_installed_and_held_packages_by_both_names() -> None:
    assert parse_dpkg_status(DPKG_QUERY_OUTPUT) == {
        "haproxy": "2.6.12-1+deb12u2",
        "libc6:amd64": "2.36-9+deb12u14",
        "libc6": "2.36-9+deb12u14",
        "nvidia-open": "580.95.05-1",
    }


def test_entries_not_installed_at_an_accepted_version() -> None:
    installed = parse_dpkg_status(DPKG_QUERY_OUTPUT)
    compared: list[tuple[str, str]] = []

    def at_least(version: str, wanted: str) -> bool:
        compared.append((version, wanted))
        return version >= wanted

    entries = [
        "haproxy",
        "libc6:amd64",
        "libc6",
        "nvidia-open=580.95.05-1",
        "haproxy>=2.6",
        "haproxy>=2.7",
        "nvidia-open=580.82.07-1",
        "cuda-toolkit-13-0",
        "docker.io",
        "jq",
        "nvidia-open=580.*",
        "nvidia-*",
        "./local/package.deb",
        "",
    ]
    assert not_installed(entries, installed, at_least) == [
        "haproxy>=2.7",
        "nvidia-open=580.82.07-1",
        "cuda-toolkit-13-0",
        "docker.io",
        "jq",
        "nvidia-open=580.*",
        "nvidia-*",
        "./local/package.deb",
    ]
    assert compared == [("2.6.12-1+deb12u2", "2.6"), ("2.6.12-1+deb12u2", "2.7")]


def test_held_packages_by_bare_name_whatever_their_state() -> None:
    assert held_packages(DPKG_QUERY_OUTPUT) == ["nvidia-open"]
    assert held_packages(
        "nvidia-open:amd64\tnvidia-open\thold ok half-configured\t580.95.05-1\n"
    ) == ["nvidia-open"]


def test_pattern_pins_are_version_patterns_the_installed_version_matches() -> None:
    installed = {"nvidia-open": "580.126.09-1", "libnccl2": "2.28.7-1+cuda13.0", "jq": "1.6"}
    entries = [
        "nvidia-open=580.126.09-*",
        "libnccl2=2.27.*",  # installed version outside the pattern
        "jq=1.6",  # exact: not_installed judges it
        "cuda-*=13.0*",  # a name pattern: the apt module's
        "absent=1.*",
        "jq>=1.*",
    ]
    assert pattern_pins(entries, installed) == {"nvidia-open": "580.126.09-*"}


def test_madison_lines_give_the_offered_versions() -> None:
    output = (
        "nvidia-open | 580.126.09-1 | https://mirror.internal/cuda/debian12/x86_64  Packages\n"
        "nvidia-open | 575.57.08-1 | https://mirror.internal/cuda/debian12/x86_64  Packages\n"
        "   haproxy | 2.6.12-1+deb12u2 | http://deb.debian.org/debian bookworm/main Packages\n"
        "N: Unable to locate package nothing\n"
    )
    assert parse_madison(output) == {
        "nvidia-open": ["580.126.09-1", "575.57.08-1"],
        "haproxy": ["2.6.12-1+deb12u2"],
    }


def test_a_pin_is_settled_when_no_newer_matching_version_is_offered() -> None:
    def at_least(version: str, wanted: str) -> bool:
        # dpkg order for these versions: by the numbers, then by the revision.
        def key(text: str) -> tuple[int, ...]:
            return tuple(int(part) for part in re.split(r"[.-]", text))

        return key(version) >= key(wanted)

    pins = {"a": "580.126.09-*", "b": "580.126.09-*", "c": "580.126.09-*", "d": "580.126.09-*"}
    installed = {name: "580.126.09-2" for name in pins}
    offered = {
        "a": ["580.126.09-2", "580.126.09-1"],  # older matches only
        "b": ["580.126.09-3"],  # a newer match: apt would upgrade
        "c": ["580.126.20-1"],  # newer, outside the pattern
        # d: not offered at all (installed from a file, or lists gone)
    }
    assert settled_pins(pins, installed, offered, at_least) == ["a", "c", "d"]
