"""Data volumes (the data_volume role) on the loop-device disks prepare.yml gives the node: a
LUKS2 volume, and a plain one mounted by UUID.

What a test host can run: the format (refused on a disk that holds a filesystem), the vault key's
slot, the clevis binding to a real tang server on the client host (the key it recovers opens the
volume), /etc/crypttab, the key file method, and re-runs that reformat nothing. Opening the
volume needs device-mapper, which this machine's kernel lacks (no dm_mod): there the role must
stop with that reason after everything above is in place; with device-mapper it goes on to the
filesystem and the mount. The filesystem and the mount run here on a volume without encryption:
a device that holds a filesystem is mounted as it is, never reformatted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import testinfra
from scenario_playbooks import run_playbook

testinfra_hosts = ["ansible://common-node"]

PLAYBOOK = Path(__file__).resolve().parents[1] / "luks.yml"
NODE = testinfra.get_host("ansible://common-node")
CLIENT = testinfra.get_host("ansible://common-client")
KEY = "test-luks-vault-key-0123456789abcdef0123456789"
EMPTY = "/dev/disk/by-id/onprem-llm-test-empty-disk"
USED = "/dev/disk/by-id/onprem-llm-test-used-disk"
NAME = "onprem-llm-models"
NO_DEVICE_MAPPER = "has no device-mapper (no device-mapper in"
PLAIN_PATH = "/srv/plain-data"
VOLUME = "data_volume_volumes[0]"


@pytest.fixture(scope="module", autouse=True)
def _detach_the_loop_devices():
    # Loop devices belong to the machine's kernel: give them back when the module ends.
    yield
    NODE.run(f"umount {PLAIN_PATH}")
    for disk in (EMPTY, USED):
        NODE.run(f"losetup -d $(readlink -f {disk})")


def encrypt(
    device: str = "empty-disk",
    unlock: str = "tang",
    key: str = KEY,
    encryption: str = "luks",
    path: str = "/srv/encrypted-models",
) -> tuple[str, bool]:
    volume = {
        "path": path,
        "device": f"/dev/disk/by-id/onprem-llm-test-{device}",
        "fstype": "ext4",
        "encryption": encryption,
        "luks_name": NAME,
        "luks_key": key,
    }
    extra = {"data_volume_volumes": [volume], "luks_test_unlock": unlock}
    output, ok, _seconds = run_playbook(PLAYBOOK, "-e", json.dumps(extra))
    assert key not in output
    return output, ok


def assert_opened_or_stopped_for_device_mapper(output: str, ok: bool) -> None:
    if NODE.run("grep -qw device-mapper /proc/misc").rc == 0:
        assert ok, output[-3000:]
        assert NODE.mount_point("/srv/encrypted-models").exists
    else:
        assert not ok and NO_DEVICE_MAPPER in output, output[-3000:]


def luks_uuid() -> str:
    return NODE.check_output(f"cryptsetup luksUUID {EMPTY}")


def test_a_disk_that_holds_a_filesystem_is_not_formatted():
    output, ok = encrypt(device="used-disk")
    assert not ok
    assert "holds ext4, not a LUKS volume" in output, output[-3000:]
    assert f"{VOLUME}.luks_format_force: true" in output
    assert NODE.check_output(f"blkid -p -s TYPE -o value {USED}") == "ext4"


def test_tang_formats_binds_and_keeps_no_key_on_the_host():
    output, ok = encrypt()
    assert_opened_or_stopped_for_device_mapper(output, ok)
    probe = NODE.check_output(f"blkid -p -o export {EMPTY}").splitlines()
    assert "TYPE=crypto_LUKS" in probe and "VERSION=2" in probe
    # The vault key holds a slot.
    test_key = f"printf %s '{KEY}' | cryptsetup open --test-passphrase --key-file - {EMPTY}"
    assert NODE.run(test_key).rc == 0
    # clevis is bound to the client's tang server, and what it recovers opens the volume.
    client = CLIENT.check_output("hostname -I").split()[0]
    bindings = NODE.check_output(f"clevis luks list -d {EMPTY}").splitlines()
    assert len(bindings) == 1, bindings
    slot, binding = bindings[0].split(": ", 1)
    assert binding == f'sss \'{{"t":1,"pins":{{"tang":[{{"url":"http://{client}"}}]}}}}\''
    recovered = NODE.run(
        f"clevis luks pass -d {EMPTY} -s {slot} | cryptsetup open --test-passphrase --key-file - "
        f"{EMPTY}"
    )
    assert recovered.rc == 0, recovered.stderr
    # Unlocked at boot by clevis-systemd once the network is up; no key file anywhere.
    crypttab = NODE.file("/etc/crypttab")
    assert crypttab.mode == 0o600
    assert f"{NAME} UUID={luks_uuid()} none luks,discard,_netdev" in crypttab.content_string
    assert not NODE.file(f"/etc/onprem-llm/luks/{NAME}.key").exists


def test_a_second_run_reformats_nothing_and_binds_nothing_again():
    before = luks_uuid()
    output, ok = encrypt()
    assert_opened_or_stopped_for_device_mapper(output, ok)
    assert luks_uuid() == before
    assert len(NODE.check_output(f"clevis luks list -d {EMPTY}").splitlines()) == 1
    assert "changed: [common-node]" not in output, output[-3000:]


def test_another_key_is_refused_before_anything_changes():
    output, ok = encrypt(key="another-vault-key-0123456789abcdef012345")
    assert not ok
    assert f"{VOLUME}.luks_key does not open the LUKS volume" in output, output[-3000:]
    assert len(NODE.check_output(f"clevis luks list -d {EMPTY}").splitlines()) == 1


def test_the_key_file_method_replaces_the_clevis_binding():
    output, ok = encrypt(unlock="keyfile")
    assert_opened_or_stopped_for_device_mapper(output, ok)
    key_file = NODE.file(f"/etc/onprem-llm/luks/{NAME}.key")
    assert key_file.mode == 0o400 and key_file.user == "root"
    assert key_file.content_string == KEY
    crypttab = NODE.file("/etc/crypttab").content_string
    assert f"{NAME} UUID={luks_uuid()} /etc/onprem-llm/luks/{NAME}.key luks,discard" in crypttab
    assert NODE.run(f"clevis luks list -d {EMPTY}").stdout.strip() == ""


def test_a_plain_volume_keeps_its_filesystem_and_is_mounted_by_uuid():
    before = NODE.check_output(f"blkid -p -s UUID -o value {USED}")
    plain = {"encryption": "none", "path": PLAIN_PATH}
    output, ok = encrypt(device="used-disk", **plain)
    assert ok, output[-3000:]
    assert NODE.check_output(f"blkid -p -s UUID -o value {USED}") == before, "not reformatted"
    mount = NODE.mount_point(PLAIN_PATH)
    assert mount.exists and mount.filesystem == "ext4"
    assert NODE.check_output(f"findmnt -n -o SOURCE {PLAIN_PATH}") == NODE.check_output(
        f"readlink -f {USED}"
    )
    fstab = NODE.file("/etc/fstab").content_string
    assert f"UUID={before} {PLAIN_PATH} ext4 defaults,noatime" in fstab
    output, ok = encrypt(device="used-disk", **plain)
    assert ok and "changed: [common-node]" not in output, output[-3000:]
