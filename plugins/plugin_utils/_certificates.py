"""Checks of a certificate the inventory provides (pki_mode: provided), read on the controller
before any host changes: present, in date, naming what peers connect to, signed by the CA
chain given with it. The hosts verify each other against that CA, so a certificate that fails
here would fail every TLS handshake after the deploy."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import ExtensionOID
except ImportError:  # ansible-core requires it; without it the host-side checks remain
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True


def _certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _valid_after(certificate: x509.Certificate) -> datetime.datetime:
    utc = getattr(certificate, "not_valid_after_utc", None)  # cryptography 42 and later
    return utc or certificate.not_valid_after.replace(tzinfo=datetime.UTC)


def _valid_before(certificate: x509.Certificate) -> datetime.datetime:
    utc = getattr(certificate, "not_valid_before_utc", None)
    return utc or certificate.not_valid_before.replace(tzinfo=datetime.UTC)


def _names(certificate: x509.Certificate) -> tuple[set[str], set[str]]:
    """The certificate's DNS names (lower case) and IP addresses."""
    try:
        alternative = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        ).value
    except x509.ExtensionNotFound:
        return set(), set()
    dns = {name.lower() for name in alternative.get_values_for_type(x509.DNSName)}
    ips = {str(address) for address in alternative.get_values_for_type(x509.IPAddress)}
    return dns, ips


def _covers(name: str, dns: set[str], ips: set[str]) -> bool:
    try:
        return str(ipaddress.ip_address(name)) in ips
    except ValueError:
        pass
    name = name.lower()
    if name in dns:
        return True
    rest = name.partition(".")[2]
    return bool(rest) and f"*.{rest}" in dns


def _issued_by_one_of(leaf: x509.Certificate, issuers: Iterable[x509.Certificate]) -> bool:
    for issuer in issuers:
        try:
            leaf.verify_directly_issued_by(issuer)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def provided_certificate_errors(
    certificate: Path,
    ca_certificate: Path | None,
    names: Iterable[str],
    now: datetime.datetime | None = None,
) -> list[str]:
    """What is wrong with the provided certificate file (leaf first, then any intermediates)
    for a host reached by `names`; ca_certificate None: none was given."""
    if not HAS_CRYPTOGRAPHY:
        return []
    now = now or datetime.datetime.now(datetime.UTC)
    if not certificate.is_file():
        return [f"pki_provided_certificate: {certificate} is not a file on the controller."]
    try:
        chain = _certificates(certificate)
    except ValueError as error:
        return [f"pki_provided_certificate: {certificate} holds no PEM certificate ({error})."]
    leaf = chain[0]
    errors = []
    if _valid_after(leaf) <= now:
        errors.append(
            f"pki_provided_certificate: {certificate} expired on "
            f"{_valid_after(leaf):%Y-%m-%d %H:%M} UTC; give a renewed certificate."
        )
    elif _valid_before(leaf) > now:
        errors.append(
            f"pki_provided_certificate: {certificate} is not valid before "
            f"{_valid_before(leaf):%Y-%m-%d %H:%M} UTC."
        )
    dns, ips = _names(leaf)
    missing = [name for name in names if not _covers(name, dns, ips)]
    if missing:
        named = sorted(dns) + sorted(ips)
        errors.append(
            f"pki_provided_certificate: {certificate} does not name {missing}, which peers "
            f"connect to and check (it names {named or 'nothing in subjectAltName'})."
        )
    if ca_certificate is None:
        errors.append(
            "pki_provided_ca_certificate must name the CA chain that signed "
            "pki_provided_certificate: every host verifies its peers against it."
        )
        return errors
    if not ca_certificate.is_file():
        errors.append(
            f"pki_provided_ca_certificate: {ca_certificate} is not a file on the controller."
        )
        return errors
    try:
        authorities = _certificates(ca_certificate)
    except ValueError as error:
        errors.append(
            f"pki_provided_ca_certificate: {ca_certificate} holds no PEM certificate ({error})."
        )
        return errors
    if not _issued_by_one_of(leaf, [*chain[1:], *authorities]):
        errors.append(
            f"pki_provided_certificate: {certificate} is not signed by a certificate of "
            f"pki_provided_ca_certificate ({ca_certificate}) or of its own chain."
        )
    return errors
