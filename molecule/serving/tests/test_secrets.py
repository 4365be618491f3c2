"""The site's secrets (API keys, Redis passwords, the cloud key, the pseudonymisation key) reach
no log and no journal on any host the collection manages, after all the traffic, reloads,
failovers and playbook runs of the tests before this one; the files that must hold them are
unreadable by other users.

The secrets are read from the scenario's inventory, so a secret added there is checked too.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import testinfra
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
INVENTORY = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["provisioner"]["inventory"]
# The hosts this collection configures: not the client, nor the cloud API stand-in (not ours).
HOSTS = [
    "serving-gw1",
    "serving-gw2",
    *(f"serving-engine{i}" for i in (1, 2, 3, 4)),
    *(f"serving-redis{i}" for i in (1, 2, 3)),
]
# Where a secret may be stored (0600/0640 files), and where it must never be: logs, spools.
STORES = "/etc /var/lib /root /home /srv"
LOGS = "/var/log /tmp /var/tmp /var/spool /var/cache"


def _secrets(value, name=""):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "haproxy_api_keys":
                yield from (str(secret) for secret in item.values())
            else:
                yield from _secrets(item, str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _secrets(item, name)
    elif isinstance(value, str) and ("password" in name or name.endswith("_key")):
        yield value


SECRETS = sorted(set(_secrets(INVENTORY["group_vars"])))


def test_the_scenario_has_the_secrets_this_test_looks_for():
    # Five Redis passwords, eight API keys, the cloud key and the pseudonymisation key.
    assert len(SECRETS) == 15, SECRETS
    assert all(len(secret) >= 16 for secret in SECRETS)


def _pattern_args():
    return " ".join(f"-e {shlex.quote(secret)}" for secret in SECRETS)


@pytest.mark.parametrize("name", HOSTS)
def test_no_secret_in_any_log_or_journal(name):
    host = testinfra.get_host(f"ansible://{name}")
    # grep's status is the pipeline's: 1 when no line holds a secret.
    journal = host.run(f"journalctl --no-pager -o cat | grep -F -o {_pattern_args()}")
    assert journal.rc == 1, f"secrets in {name}'s journal: {sorted(set(journal.stdout.split()))}"
    found = host.run(f"grep -rlF {_pattern_args()} $(ls -d {LOGS} 2>/dev/null)")
    assert found.rc == 1, f"secrets in these files of {name}: {found.stdout}{found.stderr}"


@pytest.mark.parametrize("name", HOSTS)
def test_files_holding_a_secret_are_closed_to_other_users(name):
    host = testinfra.get_host(f"ansible://{name}")
    found = f"grep -rlF --exclude-dir=vllm-wheelhouse {_pattern_args()} {STORES} 2>/dev/null"
    listing = host.run(f"{found} | xargs -r stat -c '%a %U:%G %n'").stdout
    open_to_others = [line for line in listing.splitlines() if int(line.split()[0], 8) & 0o007]
    assert not open_to_others, f"{name}: {open_to_others}"
