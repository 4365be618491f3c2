"""Mozilla's "intermediate" TLS profile, checked handshake by handshake with `openssl s_client`
on a test host (what sslyze does, with the tool every host has): the endpoint must complete
TLS 1.3 and TLS 1.2 with a forward-secret AEAD suite, and refuse TLS 1.1, CBC suites, RSA key
exchange, and the X448 and P-521 groups. The client offers each refused option at security
level 0 and without the host's OpenSSL configuration, so a refusal is the server's, never the
local OpenSSL's."""

from __future__ import annotations

from collections.abc import Callable

# name -> s_client options; each must complete.
ACCEPTED = {
    "TLS 1.3": "-tls1_3",
    "TLS 1.2 ECDHE AEAD": (
        "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
    ),
}
# name -> s_client options; each must be refused.
REFUSED = {
    "TLS 1.1": "-tls1_1 -cipher DEFAULT@SECLEVEL=0",
    "TLS 1.2 CBC suites": (
        "-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:"
        "ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256@SECLEVEL=0"
    ),
    "TLS 1.2 RSA key exchange": "-tls1_2 -cipher AES128-GCM-SHA256:AES256-GCM-SHA384@SECLEVEL=0",
    "X448 group": "-groups X448",
    "P-521 group": "-groups P-521",
}


def handshake_command(endpoint: str, options: str, ca_file: str | None = None) -> str:
    verify = f" -CAfile {ca_file}" if ca_file else ""
    return (
        f"OPENSSL_CONF=/dev/null openssl s_client -connect {endpoint} {options}{verify}"
        " </dev/null 2>&1"
    )


def completed(_rc: int, output: str) -> bool:
    """Whether the handshake of one s_client run completed (its exit status also reflects how
    the server closed the connection afterwards, so it is not read)."""
    return "Cipher is " in output and "Cipher is (NONE)" not in output


def violations(run: Callable[[str], tuple[int, str]], endpoint: str) -> list[str]:
    """What the endpoint gets wrong; `run` runs a shell command and returns (rc, output)."""
    found = []
    for name, options in ACCEPTED.items():
        if not completed(*run(handshake_command(endpoint, options))):
            found.append(f"{endpoint}: {name} refused")
    for name, options in REFUSED.items():
        if completed(*run(handshake_command(endpoint, options))):
            found.append(f"{endpoint}: {name} accepted")
    return found


def host_runner(host: object) -> Callable[[str], tuple[int, str]]:
    """`run` for a testinfra host."""

    def run(command: str) -> tuple[int, str]:
        result = host.run(command)  # type: ignore[attr-defined]
        return result.rc, result.stdout + result.stderr

    return run
