"""COUNT GET requests one after another, 0.2 s apart, with a 5 s timeout:
vip_requests.py URL KEY COUNT; one status per line, 0 and the error's type for a connection
error (the VIP moving between gateways)."""

import sys
import time
import urllib.error

from https_client import send


def main() -> None:
    url, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for _unused in range(count):
        try:
            with send(url, headers={"Authorization": "Bearer " + key}, timeout=5) as reply:
                reply.read()
                print(reply.status, flush=True)
        except urllib.error.HTTPError as error:
            print(error.code, flush=True)
        except OSError as error:
            print(0, type(error).__name__, flush=True)
        time.sleep(0.2)


main()
