"""A provided certificate is checked on the controller: present, in date, naming the host's
addresses, signed by the CA given with it. Certificates are made here (generated, not
recorded)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from ansible_collections.onprem.llm.plugins.plugin_utils._certificates import (
    provided_certificate_errors,
)

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def site(tmp_path: Path, certificates) -> dict:
    def make(name, **kwargs):
        return certificates.issue(name, not_before=NOW - DAY, not_after=NOW + 90 * DAY, **kwargs)

    ca = make("corporate CA", ca=True)
    leaf = make("gw-1", issuer=ca, dns=("gw-1.example.internal", "*.api.example.internal"),
                ips=("10.20.0.11",))  # fmt: skip
    return {
        "ca": ca,
        "ca_file": certificates.write(tmp_path / "ca.crt", ca[0]),
        "leaf_file": certificates.write(tmp_path / "gw-1.crt", leaf[0]),
        "dir": tmp_path,
        "make": make,
        "write": certificates.write,
    }


def test_a_good_certificate_has_no_errors(site):
    names = ["10.20.0.11", "gw-1.example.internal", "llm.api.example.internal"]
    assert provided_certificate_errors(site["leaf_file"], site["ca_file"], names, NOW) == []


def test_an_intermediate_in_the_certificate_file_is_followed(site):
    intermediate = site["make"]("issuing CA", issuer=site["ca"], ca=True)
    leaf = site["make"]("gw-2", issuer=intermediate, ips=("10.20.0.12",))
    chain = site["write"](site["dir"] / "gw-2.crt", leaf[0], intermediate[0])
    assert provided_certificate_errors(chain, site["ca_file"], ["10.20.0.12"], NOW) == []


def test_an_expired_certificate_is_named(site):
    errors = provided_certificate_errors(
        site["leaf_file"], site["ca_file"], ["10.20.0.11"], NOW + 120 * DAY
    )
    assert len(errors) == 1 and "expired on 2027-03-06" in errors[0], errors


def test_a_certificate_for_other_names_is_named(site):
    errors = provided_certificate_errors(
        site["leaf_file"], site["ca_file"], ["10.20.0.99", "gw-9.example.internal"], NOW
    )
    assert len(errors) == 1, errors
    assert "does not name ['10.20.0.99', 'gw-9.example.internal']" in errors[0]
    assert "gw-1.example.internal" in errors[0]
    # A wildcard covers one label only.
    deep = provided_certificate_errors(
        site["leaf_file"], site["ca_file"], ["a.b.api.example.internal"], NOW
    )
    assert "does not name" in deep[0]


def test_a_missing_or_foreign_ca_is_named(site):
    missing = provided_certificate_errors(
        site["leaf_file"], site["dir"] / "absent.crt", ["10.20.0.11"], NOW
    )
    assert missing == [f"pki_provided_ca_certificate: {site['dir']}/absent.crt is not a file "
                       "on the controller."]  # fmt: skip
    none = provided_certificate_errors(site["leaf_file"], None, ["10.20.0.11"], NOW)
    assert "pki_provided_ca_certificate must name the CA chain" in none[0]
    other = site["write"](site["dir"] / "other-ca.crt", site["make"]("another CA", ca=True)[0])
    foreign = provided_certificate_errors(site["leaf_file"], other, ["10.20.0.11"], NOW)
    assert "is not signed by a certificate of pki_provided_ca_certificate" in foreign[0]


def test_a_missing_or_unreadable_certificate_is_named(site):
    missing = provided_certificate_errors(site["dir"] / "nope.crt", site["ca_file"], [], NOW)
    assert "is not a file on the controller" in missing[0]
    garbage = site["dir"] / "garbage.crt"
    garbage.write_text("not a certificate\n")
    assert (
        "holds no PEM certificate"
        in provided_certificate_errors(garbage, site["ca_file"], [], NOW)[0]
    )
