"""onprem.llm.certificate_info: community.crypto's certificate fields, without a warning."""

from __future__ import annotations

import datetime
import warnings

from ansible_collections.community.crypto.plugins.filter.x509_certificate_info import (
    x509_certificate_info_filter,
)
from ansible_collections.onprem.llm.plugins.filter.tls import certificate_info
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def self_signed_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "onprem.llm test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_the_fields_are_community_cryptos_and_no_warning_escapes() -> None:
    pem = self_signed_pem()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = certificate_info(pem)
    assert [str(warning.message) for warning in caught] == []
    assert info == x509_certificate_info_filter(pem)
    assert info["subject"] == {"commonName": "onprem.llm test CA"}
    assert info["basic_constraints"] == ["CA:TRUE", "pathlen:0"]
    assert info["public_key_type"] == "ECC" and info["public_key_data"]["curve"] == "secp384r1"
