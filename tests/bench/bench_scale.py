"""Measure how the controller-side steps grow with the size of the site.

A script, not a test. For each size N it writes an inventory shaped like inventories/prod
grown to N GPU nodes (HGX H200 servers and GB200 NVL72 racks of 18 compute trays, each rack its
own group), with 8 gateways, a Redis host and a monitoring host, then times:

  inventory   ansible-inventory --list
  validate    ansible-playbook playbooks/validate_input.yml (controller-side, no connection)
  render      the HAProxy configuration of one gateway and the Prometheus configuration of
              the monitoring host, rendered from the roles' templates into a temporary
              directory (connection: local, nothing is installed)
  declared    what site.yml asks on the controller for every host: its listening ports
              (onprem.llm.firewall_listeners) and data volumes (onprem.llm.data_volumes), each
              read from the declarations of every role the host runs, once for all hosts as
              the firewall and data_volume roles run them (no connection)

  python tests/bench/bench_scale.py [--nodes 10 100 1000] [--keep DIR] [--validate-playbook FILE]

--validate-playbook times another validation playbook instead (an older copy, to compare).

Prints a table N x step x seconds, then JSON. No host is reached; the vault holds the example
values of inventories/prod/group_vars/all/vault.yml.example.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROD = REPO_ROOT / "inventories" / "prod"
TRAYS_PER_RACK = 18
GATEWAYS = 8
STEPS = ("inventory", "validate", "render", "declared")

# Renders the two configurations with the roles' defaults and vars at their usual precedence:
# a throwaway role whose defaults and vars are those of haproxy and prometheus.
RENDER_TASKS = """\
---
- name: Make the output directory
  ansible.builtin.file:
    path: "{{ bench_output }}/{{ inventory_hostname }}"
    state: directory
    mode: "0755"

- name: Render the HAProxy configuration
  ansible.builtin.template:
    src: "{{ bench_roles }}/haproxy/templates/haproxy.cfg.j2"
    dest: "{{ bench_output }}/{{ inventory_hostname }}/haproxy.cfg"
    mode: "0644"
  when: inventory_hostname in groups['gateways']

- name: Render the Prometheus configuration
  ansible.builtin.template:
    src: "{{ bench_roles }}/prometheus/templates/prometheus.yml.j2"
    dest: "{{ bench_output }}/{{ inventory_hostname }}/prometheus.yml"
    mode: "0644"
  when: inventory_hostname in groups['monitoring']
"""

RENDER_PLAYBOOK = """\
---
- name: Render the gateway and monitoring configuration on the controller
  hosts: gateway-01:monitoring-01
  connection: local
  gather_facts: false
  roles:
    - bench_render
"""


DECLARED_PLAYBOOK = """\
---
- name: Read every host's declared listeners and data volumes on the controller
  hosts: all
  gather_facts: false
  tasks:
    - name: The ports the host's roles listen on
      onprem.llm.firewall_listeners:
        hosts: "{{ ansible_play_batch }}"
      run_once: true

    - name: The devices the host's roles keep data on
      onprem.llm.data_volumes:
        hosts: "{{ ansible_play_batch }}"
      run_once: true
      no_log: true
"""


def _address(index: int, subnet: int) -> str:
    return f"10.{20 + index // 60000}.{subnet + (index // 250) % 200}.{10 + index % 250}"


def inventory(nodes: int) -> dict:
    """hosts.yml for nodes GPU nodes: about half in GB200 NVL72 racks, the rest HGX H200."""
    trays = nodes // 2
    h200 = nodes - trays
    h200_hosts = {f"h200-node-{i + 1:04d}": {"ansible_host": _address(i, 1)} for i in range(h200)}
    # As in prod: the last H200 node serves the embedding model the tenants are given.
    embedding = dict([h200_hosts.popitem()])
    gpu_children: dict = {
        "hgx_h200": {"hosts": h200_hosts, "children": {"embedding_nodes": {"hosts": embedding}}}
    }
    racks: dict = {}
    for tray in range(trays):
        rack = f"nvl72_rack{tray // TRAYS_PER_RACK + 1:02d}"
        name = f"rack{tray // TRAYS_PER_RACK + 1:02d}-tray{tray % TRAYS_PER_RACK + 1:02d}"
        racks.setdefault(rack, {"hosts": {}})["hosts"][name] = {"ansible_host": _address(tray, 100)}
    if racks:
        gpu_children["gb200_nvl72"] = {"children": racks}
    return {
        "all": {
            "children": {
                "gpu_nodes": {"children": gpu_children},
                "engine_nodes": {"children": {"gpu_nodes": {}}},
                "gateways": {
                    "hosts": {
                        f"gateway-{i + 1:02d}": {"ansible_host": f"10.20.0.{11 + i}"}
                        for i in range(GATEWAYS)
                    }
                },
                "redis": {"hosts": {"redis-01": {"ansible_host": "10.20.0.21"}}},
                "monitoring": {"hosts": {"monitoring-01": {"ansible_host": "10.20.0.31"}}},
            }
        }
    }, sorted(racks)


def write_site(directory: Path, nodes: int) -> Path:
    """The inventory directory: hosts.yml, prod's group_vars, one group_vars file per rack."""
    site = directory / f"site-{nodes}"
    shutil.copytree(PROD / "group_vars", site / "group_vars", dirs_exist_ok=True)
    shutil.copy(
        site / "group_vars" / "all" / "vault.yml.example", site / "group_vars" / "all" / "vault.yml"
    )
    # prod's gateway_service_wheel: the file must exist on the controller, its content is not read.
    (site / "files").mkdir()
    (site / "files" / "onprem_llm-0.1.0-py3-none-any.whl").write_bytes(b"")
    hosts, racks = inventory(nodes)
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    for rack in racks:
        (site / "group_vars" / f"{rack}.yml").write_text(
            yaml.safe_dump({"nvidia_driver_imex_rack_group": rack})
        )
    return site


def write_render_role(directory: Path) -> Path:
    """A role bench_render with the defaults and vars of haproxy and prometheus."""
    roles = directory / "roles"
    role = roles / "bench_render"
    for part in ("defaults", "vars"):
        merged: dict = {}
        for source in ("haproxy", "prometheus"):
            path = REPO_ROOT / "roles" / source / part / "main.yml"
            merged.update(yaml.safe_load(path.read_text()) or {})
        (role / part).mkdir(parents=True)
        (role / part / "main.yml").write_text(yaml.safe_dump(merged))
    (role / "tasks").mkdir()
    (role / "tasks" / "main.yml").write_text(RENDER_TASKS)
    (directory / "render.yml").write_text(RENDER_PLAYBOOK)
    (directory / "declared.yml").write_text(DECLARED_PLAYBOOK)
    return roles


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}")
    return elapsed


def bench(nodes: int, directory: Path, validate_playbook: Path) -> dict[str, float]:
    site = write_site(directory, nodes)
    if not (directory / "roles").exists():
        write_render_role(directory)
    output = directory / f"render-{nodes}"
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections"),
        "ANSIBLE_ROLES_PATH": str(directory / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    inventory_arg = ["-i", str(site / "hosts.yml")]
    times = {
        "inventory": timed(["ansible-inventory", *inventory_arg, "--list"], env),
        "validate": timed(["ansible-playbook", *inventory_arg, str(validate_playbook)], env),
        "render": timed(
            [
                "ansible-playbook",
                *inventory_arg,
                str(directory / "render.yml"),
                "-e",
                json.dumps(
                    {
                        "ansible_become": False,
                        "ansible_python_interpreter": sys.executable,
                        "bench_output": str(output),
                        "bench_roles": str(REPO_ROOT / "roles"),
                    }
                ),
            ],
            env,
        ),
    }
    times["declared"] = timed(
        ["ansible-playbook", *inventory_arg, str(directory / "declared.yml")], env
    )
    for name in ("gateway-01/haproxy.cfg", "monitoring-01/prometheus.yml"):
        if not (output / name).is_file():
            raise SystemExit(f"render: {output / name} was not written")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--keep", type=Path, help="write the inventories here and keep them")
    parser.add_argument(
        "--validate-playbook",
        type=Path,
        default=REPO_ROOT / "playbooks" / "validate_input.yml",
        help="the validation playbook to time",
    )
    args = parser.parse_args()

    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    directory.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, float]] = {}
    try:
        for nodes in args.nodes:
            results[nodes] = bench(nodes, directory, args.validate_playbook.resolve())
            cells = "  ".join(f"{step} {results[nodes][step]:7.1f}s" for step in STEPS)
            print(f"N={nodes:<5} {cells}", file=sys.stderr, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)

    print(f"{'GPU nodes':>9}  " + "  ".join(f"{step:>10}" for step in STEPS))
    for nodes, times in results.items():
        print(f"{nodes:>9}  " + "  ".join(f"{times[step]:>9.1f}s" for step in STEPS))
    print(json.dumps({str(nodes): times for nodes, times in results.items()}))


if __name__ == "__main__":
    main()
