"""onprem.llm.openssl_tls_config: an OpenSSL configuration (OPENSSL_CONF) that holds a service to
the site's TLS profile, for services whose own settings cannot choose the key exchange groups
(Python's ssl module before 3.13, Redis).

onprem.llm.certificate_info: community.crypto.x509_certificate_info without the deprecation
warning newer cryptography releases give for DSA on every call, which Ansible prints as a
worker writing to stderr on every run."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

# TLS 1.3 suites are all AEAD: Mozilla's intermediate profile allows the three OpenSSL offers.
_TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _names(option: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise AnsibleFilterError(f"openssl_tls_config: {option} must be a non-empty list")
    names = [str(item) for item in value]
    bad = [name for name in names if not _NAME.match(name)]
    if bad:
        raise AnsibleFilterError(f"openssl_tls_config: {option} has names OpenSSL lacks: {bad}")
    return names


def openssl_tls_config(groups: Sequence[str], ciphers: str) -> str:
    """The configuration text: TLS 1.2 at least, the TLS 1.2 suites of `ciphers` (an OpenSSL
    cipher list), the TLS 1.3 AEAD suites, and the key exchange `groups`, for every TLS context
    the process creates."""
    suites = _names("ciphers", [cipher for cipher in str(ciphers).split(":") if cipher])
    return "\n".join(
        [
            "openssl_conf = onprem_llm_init",
            "",
            "[onprem_llm_init]",
            "ssl_conf = onprem_llm_ssl",
            "",
            "[onprem_llm_ssl]",
            "system_default = onprem_llm_tls",
            "",
            "[onprem_llm_tls]",
            "MinProtocol = TLSv1.2",
            f"CipherString = {':'.join(suites)}",
            f"Ciphersuites = {_TLS13_SUITES}",
            f"Groups = {':'.join(_names('groups', groups))}",
            "",
        ]
    )


def certificate_info(pem: str) -> dict[str, Any]:
    """The certificate's fields, as community.crypto.x509_certificate_info returns them."""
    from ansible_collections.community.crypto.plugins.filter.x509_certificate_info import (
        x509_certificate_info_filter,
    )

    with warnings.catch_warnings():
        # Its key-type check names DSA, which cryptography 47 and later deprecate on access.
        warnings.filterwarnings("ignore", message="DSA is deprecated")
        return x509_certificate_info_filter(pem)


class FilterModule:
    """TLS filters."""

    def filters(self) -> dict[str, Any]:
        return {"openssl_tls_config": openssl_tls_config, "certificate_info": certificate_info}
