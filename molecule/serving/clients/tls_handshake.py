"""A TLS handshake with one protocol version and ALPN: tls_handshake.py ADDRESS VERSION
(an ssl.TLSVersion name such as TLSv1_2); prints "accepted VERSION ALPN" or "refused REASON"."""

import socket
import ssl
import sys

from https_client import CA


def main() -> None:
    address, version = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(cafile=CA)
    # Lets this side offer old versions, so the refusal is the server's.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with context.wrap_socket(
            socket.create_connection((address, 443), 5), server_hostname=address
        ) as tls:
            print("accepted", tls.version(), tls.selected_alpn_protocol())
    except ssl.SSLError as error:
        print("refused", error.reason)


main()
