"""Make the collection importable as ansible_collections.onprem.llm for plugin unit tests.

collections/ansible_collections/onprem/llm is a committed link to the repository root, the
same path ansible-playbook uses when run from a checkout.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / "collections"

if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
