"""Connect to ADDRESS PORT: prints "open" when the port answers, "refused" on a reset,
"dropped" when nothing comes back within 3 s (a firewall that drops)."""

import socket
import sys


def main() -> None:
    address, port = sys.argv[1], int(sys.argv[2])
    with socket.socket() as connection:
        connection.settimeout(3)
        try:
            connection.connect((address, port))
            print("open")
        except TimeoutError:
            print("dropped")
        except ConnectionRefusedError:
            print("refused")


main()
