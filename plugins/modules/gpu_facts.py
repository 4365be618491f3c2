#!/usr/bin/python
# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module onprem.llm.gpu_facts: read-only facts about the NVIDIA GPU stack."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: Gather facts about NVIDIA GPUs, driver, fabric and hardware profile
version_added: 0.1.0
description:
  - Runs C(nvidia-smi -q -x) and reads C(/proc/driver/nvidia/version),
    C(/proc/driver/nvidia-nvswitch/devices) and C(/sys/class/infiniband/*/device/vpd).
  - Returns the fact C(onprem_gpu) - driver and kernel module versions and whether they match,
    per-GPU health (ECC, retired pages, remapped rows, MIG, temperature, power, fabric state),
    NVSwitch and NVLink5 presence, and a derived hardware profile.
  - Never changes the host. A missing driver, no GPUs or unreadable output do not fail the task;
    they give RV(ansible_facts.onprem_gpu.gpu_count=0) and readable entries in
    RV(ansible_facts.onprem_gpu.problems), so gates elsewhere decide what is fatal.
  - The hardware profile comes from the GPUs' PCI device ids first and their product names
    second; a GPU that cannot be read ("GPU is lost", "Unknown Error", nothing but placeholders)
    does not take part, it is listed in RV(ansible_facts.onprem_gpu.unreadable_gpus) instead.
  - Output is read as bytes; anything that is not UTF-8 (process names) and characters XML
    forbids never stop the other GPUs from being read.
  - Reading InfiniBand VPD needs root; without it NVLink5 switch management is reported absent
    and a problem says why.
  - Its action takes these readings with one POSIX shell command and builds the same facts on
    the controller; the module runs where the shell cannot answer exactly (an unreadable file,
    async, a task environment, no coreutils C(timeout)).
author:
  - onprem.llm maintainers (@onprem-llm)
options:
  nvidia_smi_path:
    description:
      - Path of C(nvidia-smi). Found on E(PATH) (and the sbin directories) when omitted.
    type: path
  proc_root:
    description:
      - Root of the proc filesystem to read.
    type: path
    default: /proc
  sys_root:
    description:
      - Root of the sysfs filesystem to read.
    type: path
    default: /sys
  profile:
    description:
      - Hardware profile the inventory sets for the host (for example O(profile=h200_hgx) from
        C(nvidia_driver_profile)). It wins over detection; when it differs from what the GPUs
        read as, the module warns and RV(ansible_facts.onprem_gpu.profile_override_note) says so.
      - Empty to use the detected profile.
    type: str
    default: ""
  timeout:
    description:
      - Seconds to let C(nvidia-smi) run before giving up, where C(timeout) from coreutils exists.
      - A GPU that fell off the bus can make C(nvidia-smi) hang for minutes.
    type: int
    default: 60
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: full
    details: Async tasks always run the module.
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  idempotent:
    description: Running it again with the same host state returns the same result.
    support: full
  platform:
    platforms: posix
notes:
  - C(driver_versions_match=false) is the classic state after a driver upgrade without a reboot;
    NVML then refuses to start, so the userspace version comes from its error message.
  - GPU C(index) is the position in C(nvidia-smi) output (the NVML and C(nvidia-smi -i) index);
    C(minor_number) is the C(/dev/nvidiaN) number, which need not be the same.
seealso:
  - name: nvidia-smi documentation
    description: Fields of C(nvidia-smi -q).
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
"""

EXAMPLES = r"""
- name: Gather GPU facts
  onprem.llm.gpu_facts:
  become: true

- name: Require the loaded kernel module to match the installed driver
  ansible.builtin.assert:
    that:
      - onprem_gpu.driver_loaded
      - onprem_gpu.driver_versions_match
    fail_msg: "{{ onprem_gpu.problems | join('; ') }}"

- name: Require an HGX H200 board with its NVLink fabric up
  ansible.builtin.assert:
    that:
      - onprem_gpu.hardware_profile == 'h200_hgx'
      - onprem_gpu.fabric_state == 'Completed'

- name: List GPUs waiting for a reset to finish a row remap
  ansible.builtin.debug:
    msg: "{{ onprem_gpu.gpus | selectattr('remapped_rows.pending') | map(attribute='uuid') }}"

- name: Use a driver container's nvidia-smi and a host /proc mounted elsewhere
  onprem.llm.gpu_facts:
    nvidia_smi_path: /run/nvidia/driver/usr/bin/nvidia-smi
    proc_root: /host/proc
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to the host.
  returned: always
  type: dict
  contains:
    onprem_gpu:
      description: The NVIDIA GPU stack of the host.
      returned: always
      type: dict
      contains:
        driver_loaded:
          description: The NVIDIA kernel module is loaded.
          returned: always
          type: bool
          sample: true
        kernel_module_version:
          description: Version of the loaded kernel module, from C(/proc/driver/nvidia/version).
          returned: always
          type: str
          sample: 570.133.20
        kernel_module_flavor:
          description: C(open) (open kernel modules) or C(proprietary).
          returned: always
          type: str
          sample: open
        kernel_module_arch:
          description: Architecture the module was built for.
          returned: always
          type: str
          sample: x86_64
        userspace_driver_version:
          description: Driver version reported by C(nvidia-smi) (NVML).
          returned: always
          type: str
          sample: 570.133.20
        driver_versions_match:
          description: Loaded module and userspace driver agree; null when either is unknown.
          returned: always
          type: bool
          sample: true
        cuda_version:
          description: Highest CUDA version the driver supports.
          returned: always
          type: str
          sample: "12.8"
        gpu_count:
          description: Number of GPUs C(nvidia-smi) lists, readable or not.
          returned: always
          type: int
          sample: 8
        attached_gpus:
          description: The attached GPU count C(nvidia-smi) prints; null when absent.
          returned: always
          type: int
          sample: 8
        readable_gpu_count:
          description: GPUs whose readings mean something.
          returned: always
          type: int
          sample: 8
        unreadable_gpus:
          description: Indexes of GPUs that cannot be read (lost, "Unknown Error", no values).
          returned: always
          type: list
          elements: int
          sample: []
        gpus:
          description:
            - One entry per GPU, in C(nvidia-smi) order. Values not reported are null.
            - Keys C(index), C(readable), C(read_error), C(minor_number), C(uuid), C(name),
              C(architecture), C(pci_bus_id), C(pci_device_id) (C(0x2335)), C(pci_vendor_id),
              C(part) (the known part of that id, else null), C(memory_total_mib),
              C(persistence_mode), C(ecc_mode) (current), C(ecc_errors)
              (C(volatile) and C(aggregate), each C(corrected) and C(uncorrected), SRAM and DRAM
              summed), C(memory_health) (C(sram_threshold_exceeded), C(unrepairable),
              C(unrepairable_reason), C(channel_repair_pending), C(tpc_repair_pending)),
              C(retired_pages) (C(single_bit), C(double_bit), C(pending)),
              C(remapped_rows) (C(correctable), C(uncorrectable), C(pending), C(failure)),
              C(recovery_action) (C(gpu_recovery_action), r570 on), C(mig_mode) (current),
              C(mig_mode_pending), C(mig_device_count), C(temperature_c),
              C(power_draw_w), C(power_limit_w), C(fabric_state), C(fabric_status),
              C(fabric_health) (C(summary), C(bandwidth), C(route_unhealthy),
              C(route_recovery_in_progress), C(access_timeout_recovery),
              C(incorrect_configuration)).
          returned: always
          type: list
          elements: dict
          sample:
            - index: 0
              readable: true
              read_error: null
              minor_number: 0
              uuid: GPU-3a1c5e7f-09b2-4d46-8e1a-6f0c2b9d4e81
              name: NVIDIA H200
              architecture: Hopper
              pci_bus_id: "00000000:18:00.0"
              pci_device_id: "0x2335"
              pci_vendor_id: "0x10DE"
              part: H200 SXM 141GB
              memory_total_mib: 143771
              persistence_mode: true
              ecc_mode: true
              ecc_errors:
                volatile: {corrected: 0, uncorrected: 0}
                aggregate: {corrected: 0, uncorrected: 0}
              retired_pages: {single_bit: null, double_bit: null, pending: null}
              remapped_rows: {correctable: 0, uncorrectable: 0, pending: false, failure: false}
              mig_mode: false
              mig_mode_pending: false
              mig_device_count: 0
              temperature_c: 31
              power_draw_w: 76.1
              power_limit_w: 700.0
              fabric_state: Completed
              fabric_status: Success
        fabric_state:
          description:
            - Least advanced NVLink fabric state among GPUs on a fabric (C(Not Started),
              C(In Progress), C(Completed)); C(Not Supported) or C(N/A) when none is.
          returned: always
          type: str
          sample: Completed
        nvswitch_present:
          description: The driver registered NVSwitches (HGX A100/H100/H200 boards).
          returned: always
          type: bool
          sample: true
        nvswitch_count:
          description: Number of NVSwitches the driver registered.
          returned: always
          type: int
          sample: 4
        nvlink5_present:
          description:
            - An InfiniBand device's VPD carries C(SW_MNG), the NVLink5 switch management bridge
              of HGX B200/B300 boards that needs NVLSM. False on GB200 compute trays, whose
              switches sit in separate switch trays.
          returned: always
          type: bool
          sample: false
        nvswitch_board:
          description:
            - A GPU is a part sold on NVSwitch baseboards (HGX A100, H800, H20, H100, H200,
              B200, B300), whether or not a profile names the board.
          returned: always
          type: bool
          sample: true
        fabric_manager_needed:
          description: NVSwitches are registered, or the profile runs fabric manager.
          returned: always
          type: bool
          sample: true
        hardware_profile:
          description:
            - The profile in use, from the hardware table of the collection
              (C(h100_hgx), C(h200_hgx), C(b200_hgx), C(b200_168gb_hgx), C(gb200_nvl72)),
              otherwise C(generic);
              O(profile) when given, else the detected one.
          returned: always
          type: str
          sample: h200_hgx
        detected_profile:
          description:
            - The profile most readable GPUs point to, by PCI device id (product name when the
              id is unknown). GPUs of mixed parts without a majority give C(generic).
          returned: always
          type: str
          sample: h200_hgx
        profile_source:
          description: C(pci_id), C(product_name), C(inventory) (from O(profile)) or C(none).
          returned: always
          type: str
          sample: pci_id
        profile_override_note:
          description: Set when O(profile) differs from the detected profile; null otherwise.
          returned: always
          type: str
          sample: >-
            hardware profile h200_hgx set by the inventory;
            the GPUs read as generic (by pci id)
        problems:
          description: Readable reasons facts are missing or the driver is not usable.
          returned: always
          type: list
          elements: str
          sample:
            - "nvidia-smi not found: the NVIDIA userspace driver is not installed"
"""

import glob
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_smi import (
    HostReadings,
    SmiRun,
    build_facts,
)

FACT_NAME = "onprem_gpu"
_TIMEOUT_RC = 124  # coreutils timeout(1)


def _read_text(path: str, problems: list[str]) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        problems.append(f"cannot read {path}: {err.strerror or err}")
        return None


def _list_dir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []  # absent: no NVSwitch driver registered


def _read_vpds(sys_root: str, problems: list[str]) -> list[bytes]:
    vpds = []
    for path in sorted(
        glob.glob(os.path.join(sys_root, "class", "infiniband", "*", "device", "vpd"))
    ):
        try:
            with open(path, "rb") as handle:
                vpds.append(handle.read())
        except OSError as err:
            problems.append(
                f"cannot read {path}: {err.strerror or err} (NVLink5 detection needs root)"
            )
    return vpds


def _run_nvidia_smi(module: AnsibleModule, problems: list[str]) -> SmiRun:
    path = module.params["nvidia_smi_path"]
    if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
        problems.append(f"{path} is not an executable file")
        return SmiRun(path=None)
    path = path or module.get_bin_path("nvidia-smi")
    if not path:
        return SmiRun(path=None)
    command = [path, "-q", "-x"]
    timeout_bin = module.get_bin_path("timeout")
    if timeout_bin:
        command = [timeout_bin, str(module.params["timeout"]), *command]
    # Bytes: process names are whatever the kernel holds; the parser decodes leniently.
    rc, stdout, stderr = module.run_command(command, check_rc=False, encoding=None)
    if timeout_bin and rc == _TIMEOUT_RC:
        # Whatever it printed before hanging is a truncated document; the hang is the news.
        stdout, stderr = b"", f"timed out after {module.params['timeout']} s"
    return SmiRun(path=path, rc=rc, stdout=stdout, stderr=stderr)


def gather(module: AnsibleModule) -> dict[str, Any]:
    """Read the host and return the facts; reads only, so check mode needs nothing special."""
    proc_root = module.params["proc_root"]
    problems: list[str] = []
    readings = HostReadings(
        smi=_run_nvidia_smi(module, problems),
        proc_version=_read_text(os.path.join(proc_root, "driver", "nvidia", "version"), problems),
        nvswitch_devices=_list_dir(os.path.join(proc_root, "driver", "nvidia-nvswitch", "devices")),
        ib_vpds=_read_vpds(module.params["sys_root"], problems),
        problems=problems,
        profile_override=module.params["profile"] or "",
    )
    facts = build_facts(readings)
    if facts["profile_override_note"]:
        module.warn(facts["profile_override_note"])
    return facts


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi_path": {"type": "path"},
            "proc_root": {"type": "path", "default": "/proc"},
            "sys_root": {"type": "path", "default": "/sys"},
            "profile": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, ansible_facts={FACT_NAME: gather(module)})


if __name__ == "__main__":
    main()
