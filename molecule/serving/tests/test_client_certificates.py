"""Mutual TLS per tenant: team-mtls's API key counts only with a client certificate of its name
signed by the site CA; other tenants need none; a certificate from another CA ends the
handshake. Certificates are made for the test with the scenario's CA (pki_ca_dir)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from gateway_client import CA, GATEWAYS, KEY_A, address

testinfra_hosts = ["ansible://serving-client"]

KEY_MTLS = "sk-test-team-mtls-0123456789abcdef01234"
ALLOWED = "batch.team-mtls.test"
CA_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pki"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(host, tmp_path_factory):
    """name -> (certificate path, key path) on the client host."""
    work = tmp_path_factory.mktemp("client-certificates")
    extensions = work / "client.ext"
    extensions.write_text("extendedKeyUsage = clientAuth\nkeyUsage = digitalSignature\n")
    made = {}
    for name, signer in [(ALLOWED, "site"), ("other.team-mtls.test", "site"), (ALLOWED, "self")]:
        label = f"{signer}-{name}"
        key, csr, crt = (work / f"{label}.{ext}" for ext in ("key", "csr", "crt"))
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", str(key), "-subj", f"/CN={name}",
                 "-out", str(csr))  # fmt: skip
        if signer == "site":
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(CA_DIR / "ca.crt"),
                     "-CAkey", str(CA_DIR / "ca.key"), "-days", "1", "-extfile", str(extensions),
                     "-out", str(crt))  # fmt: skip
        else:
            _openssl("x509", "-req", "-in", str(csr), "-signkey", str(key), "-days", "1",
                     "-extfile", str(extensions), "-out", str(crt))  # fmt: skip
        paths = (f"/tmp/{label}.crt", f"/tmp/{label}.key")
        for source, target in zip((crt, key), paths, strict=True):
            host.check_output(f"cat > {target} <<'PEM'\n{source.read_text()}PEM")
        made[label] = paths
    return made


def models(host, key, certificate=None):
    """HTTP status and body of GET /v1/models through the first gateway."""
    client_certificate = f"--cert {certificate[0]} --key {certificate[1]}" if certificate else ""
    result = host.run(
        f"curl -sS -m 10 -w '\\n%{{http_code}}' --cacert {CA} {client_certificate} "
        f"-H 'Authorization: Bearer {key}' https://{address(GATEWAYS[0])}/v1/models"
    )
    body, _unused, status = result.stdout.rpartition("\n")
    return result.rc, status, body


def test_the_key_alone_is_refused(host, certificates):
    rc, status, body = models(host, KEY_MTLS)
    assert (rc, status) == (0, "403"), body
    assert json.loads(body)["error"]["code"] == "client_certificate_required"


def test_the_key_with_its_certificate_is_answered(host, certificates):
    rc, status, body = models(host, KEY_MTLS, certificates[f"site-{ALLOWED}"])
    assert (rc, status) == (0, "200"), body


def test_a_certificate_of_another_name_is_refused(host, certificates):
    rc, status, body = models(host, KEY_MTLS, certificates["site-other.team-mtls.test"])
    assert (rc, status) == (0, "403"), body


def test_a_certificate_from_another_ca_ends_the_handshake(host, certificates):
    rc, status, _unused = models(host, KEY_MTLS, certificates[f"self-{ALLOWED}"])
    assert rc != 0 and status == "000"


def test_other_tenants_need_no_certificate(host, certificates):
    assert models(host, KEY_A)[:2] == (0, "200")
    # A certificate does not give another tenant's key anything either: it is still team-a's.
    assert models(host, KEY_A, certificates[f"site-{ALLOWED}"])[:2] == (0, "200")
