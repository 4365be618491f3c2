"""Shared by every scenario's tests: the test hosts are reached over ssh, as production hosts are.

`ansible://NAME` hosts resolve through molecule's inventory (addresses, the scenario's key, the
pinned host keys); testinfra then runs commands over ssh itself, one connection kept per host.
"""

import os

_inventory_file = os.environ.get("MOLECULE_INVENTORY_FILE")
if _inventory_file:
    # The directory, so that its group_vars and host_vars come with it.
    os.environ.setdefault("ANSIBLE_INVENTORY", os.path.dirname(_inventory_file))
