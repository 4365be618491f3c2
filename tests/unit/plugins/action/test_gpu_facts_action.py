"""The gpu_facts action run by ansible-playbook on localhost, against the gpu_facts module.

Each case is two tasks of one play with the same arguments: the first as a play runs it (the
action's shell answer where it can give one), the second with a task environment (a variable
nothing reads), which the shell cannot apply, so the action runs the module on the host as its
fallback does. Their facts, changed and warnings must be equal. The module's readings are also
compared directly (HostReadings, in-process) with those parsed from the shell's output, under
each POSIX shell at hand.

Whether the module ran is read twice: ansible-playbook -vvv names each module file it sends
("Using module file .../plugins/modules/gpu_facts.py"), counted over the play; and a module's
result carries `invocation` (its arguments), which the shell answer never has.

nvidia-smi is a stand-in printing a fixture (a recorded or generated `nvidia-smi -q -x`, in
tests/unit/fixtures/nvidia_smi) given as nvidia_smi_path or found on PATH; /proc and /sys are
the fixture hosts' trees or trees made here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.onprem.llm.plugins.action.gpu_facts import (
    _ancestors,
    judged_options,
    parse_readings,
    read_command,
    read_script,
)
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_smi import (
    HostReadings,
    build_facts,
)
from ansible_collections.onprem.llm.plugins.modules import gpu_facts as gpu_facts_module

from tests.unit.conftest import run_local_play

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
HOSTS = FIXTURES / "hosts"
MODULE_FILE = "Using module file "
MODULE_PATH = "/plugins/modules/gpu_facts.py"
TOOLS = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
# What makes the action leave the reference task to the module.
REFERENCE = {"environment": {"ONPREM_LLM_TEST_REFERENCE": "module"}}
# Each case's (first task's result, the reference task's result), by case name.
Answers = dict[str, tuple[dict[str, Any], dict[str, Any]]]
NO_DRIVER = (
    b"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    b"Make sure that the latest NVIDIA driver is installed and running.\xff\n"
)


def stand_in(directory: Path, stdout: Path | bytes = b"", stderr: bytes = b"", rc: int = 0) -> str:
    """An executable nvidia-smi: prints stdout (a fixture's bytes) and stderr, exits rc."""
    directory.mkdir(parents=True, exist_ok=True)
    out, err = directory / "stdout", directory / "stderr"
    out.write_bytes(stdout.read_bytes() if isinstance(stdout, Path) else stdout)
    err.write_bytes(stderr)
    script = directory / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-q -x" ] || { echo "unexpected arguments: $*" >&2; exit 2; }\n'
        f"cat '{out}'\ncat '{err}' >&2\nexit {rc}\n"
    )
    script.chmod(0o755)
    return str(script)


def host(name: str) -> dict[str, str]:
    return {"proc_root": str(HOSTS / name / "proc"), "sys_root": str(HOSTS / name / "sys")}


def odd_trees(root: Path) -> dict[str, str]:
    """/proc and /sys trees with what a listing or a glob can get wrong: hidden names, names
    with a newline or blanks, a dangling link, a device without VPD, binary VPD, and a version
    file in CRLF with a byte that is not UTF-8."""
    proc, sys_root = root / "proc", root / "sys"
    nvidia = proc / "driver" / "nvidia"
    nvidia.mkdir(parents=True)
    version = (HOSTS / "h200_hgx" / "proc/driver/nvidia/version").read_bytes()
    (nvidia / "version").write_bytes(version.replace(b"\n", b"\r\n") + b"\xff\rend")
    devices = proc / "driver" / "nvidia-nvswitch" / "devices"
    devices.mkdir(parents=True)
    for name in ("0000:05:00.0", ".hidden", "  ", "new\nline", "..dots"):
        (devices / name).mkdir()
    (devices / "gone").symlink_to(root / "nowhere")
    infiniband = sys_root / "class" / "infiniband"
    for name, vpd in (
        ("mlx5_0", bytes(range(256)) * 4),
        ("mlx5_1", b"PN MCX75310AAS-NEAT"),
        ("mlx5_1-a", b""),
        ("mlx5 2\nx", b"\r\n\x00"),
        (".hidden", b"SW_MNG in a name the module's glob skips"),
    ):
        (infiniband / name / "device").mkdir(parents=True)
        (infiniband / name / "device" / "vpd").write_bytes(vpd)
    (infiniband / "mlx5_10" / "device").mkdir(parents=True)  # no VPD
    (infiniband / "not-a-directory").write_text("")
    (infiniband / "link").symlink_to(infiniband / "mlx5_0")
    return {"proc_root": str(proc), "sys_root": str(sys_root)}


def unreadable(root: Path, what: str) -> dict[str, str]:
    """Trees where one read fails (a directory in place of a file reads like an unreadable
    file, also as root): the module words that error, so the action leaves it to the module."""
    trees = {"proc_root": str(HOSTS / "h100_hgx" / "proc"), "sys_root": str(root / "sys")}
    if what == "version":
        (root / "proc" / "driver" / "nvidia" / "version").mkdir(parents=True)
        trees["proc_root"] = str(root / "proc")
    else:
        (root / "sys" / "class" / "infiniband" / "mlx5_0" / "device" / "vpd").mkdir(parents=True)
    return trees


def compare(
    tmp_path: Path, cases: dict[str, dict[str, Any]], path: str = TOOLS
) -> tuple[Answers, int]:
    """Each case's (first task's result, module's result) and how many times the module ran.

    A case is {"args": ..., "task": extra keywords of the first task}."""
    tasks = []
    for name, case in cases.items():
        args = case["args"]
        tasks += [
            {"name": f"{name} first", "onprem.llm.gpu_facts": args, **case.get("task", {})},
            {"name": f"{name} module", "onprem.llm.gpu_facts": args, **REFERENCE},
        ]
    env = {
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "PATH": path,
    }
    run = run_local_play(tmp_path, tasks, "-vvv", env=env)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr
    lines = run.stdout.splitlines()
    start = lines.index("{")  # the JSON report, after -vvv's lines
    report, _end = json.JSONDecoder().raw_decode("\n".join(lines[start:]))
    results = {
        task["task"]["name"]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]
    }
    module_runs = sum(
        1 for line in lines[:start] if line.startswith(MODULE_FILE) and line.endswith(MODULE_PATH)
    )
    return {name: (results[f"{name} first"], results[f"{name} module"]) for name in cases}, (
        module_runs
    )


def assert_same_answer(name: str, first: dict[str, Any], module: dict[str, Any]) -> None:
    for key in ("changed", "ansible_facts", "warnings"):
        assert first.get(key) == module.get(key), f"{name}: {key} differs"
    assert "invocation" in module, f"{name}: the reference task did not run the module"


def assert_shell_answered(name: str, first: dict[str, Any]) -> None:
    assert set(first) - {"_ansible_no_log", "action", "warnings"} == {"changed", "ansible_facts"}, (
        f"{name}: the module ran: {sorted(first)}"
    )


@pytest.fixture(scope="module")
def fixture_cases(tmp_path_factory: pytest.TempPathFactory) -> Answers:
    """One play with every case whose nvidia-smi is given as nvidia_smi_path: the shell answers
    the first task of each case in shell_cases, the module the first of each in module_cases."""
    root = tmp_path_factory.mktemp("gpu-facts")
    hangs = root / "hangs" / "nvidia-smi"
    hangs.parent.mkdir()
    hangs.write_text("#!/bin/sh\necho '<?xml version=\"1.0\" ?>'\nexec sleep 30\n")
    hangs.chmod(0o755)
    not_executable = root / "not-executable" / "nvidia-smi"
    not_executable.parent.mkdir()
    not_executable.write_text("#!/bin/sh\n")
    raw = (FIXTURES / "h200_hgx.xml").read_bytes()
    raw = raw.replace(
        b"<product_name>NVIDIA H200</product_name>", b"<product_name>\x1bH\xff</product_name>", 1
    ).replace(b"\n", b"\r\n")
    empty = root / "empty"
    empty.mkdir()
    nothing = {"proc_root": str(empty), "sys_root": str(empty)}
    shell_cases: dict[str, dict[str, Any]] = {
        "h200": {"args": {"nvidia_smi_path": stand_in(root / "h200", FIXTURES / "h200_hgx.xml"),
                          **host("h200_hgx")}},
        "b200-nvlink5": {"args": {"nvidia_smi_path": stand_in(root / "b200",
                                                              FIXTURES / "b200_hgx.xml"),
                                  **host("b200_hgx")}},
        "gb200": {"args": {"nvidia_smi_path": stand_in(root / "gb200",
                                                       FIXTURES / "gb200_tray.xml"),
                           **host("gb200_tray")}},
        "check-mode": {"args": {"nvidia_smi_path": stand_in(root / "h100",
                                                            FIXTURES / "h100_hgx.xml"),
                                **host("h100_hgx")},
                       "task": {"check_mode": True}},
        "profile-override": {"args": {"nvidia_smi_path": str(root / "h100" / "nvidia-smi"),
                                      "profile": "h200_hgx", **host("h100_hgx")}},
        "bytes-and-crlf": {"args": {"nvidia_smi_path": stand_in(root / "bytes", raw),
                                    **odd_trees(root / "odd")}},
        "fails": {"args": {"nvidia_smi_path": stand_in(root / "fails", stderr=NO_DRIVER, rc=9),
                           **nothing}},
        "fails-after-xml": {"args": {"nvidia_smi_path": stand_in(root / "partial",
                                                                 FIXTURES / "l40s_single.xml",
                                                                 b"warning\n", rc=255),
                                     **host("l40s_single"), "timeout": 30}},
        "hangs": {"args": {"nvidia_smi_path": str(hangs), "timeout": 1, **host("h100_hgx")}},
        "not-executable": {"args": {"nvidia_smi_path": str(not_executable), **nothing}},
        "missing": {"args": {"nvidia_smi_path": str(root / "no-such-nvidia-smi"), **nothing}},
    }  # fmt: skip
    module_cases: dict[str, dict[str, Any]] = {
        "version-unreadable": {"args": {"nvidia_smi_path": str(root / "h100" / "nvidia-smi"),
                                        **unreadable(root / "version", "version")}},
        "vpd-unreadable": {"args": {"nvidia_smi_path": str(root / "h100" / "nvidia-smi"),
                                    **unreadable(root / "vpd", "vpd")}},
        "task-environment": {"args": {"nvidia_smi_path": str(root / "h100" / "nvidia-smi"),
                                      **host("h100_hgx")},
                             "task": {"environment": {"ONPREM_LLM_TEST": "1"}}},
        "async": {"args": {"nvidia_smi_path": str(root / "h100" / "nvidia-smi"),
                           **host("h100_hgx")},
                  "task": {"async": 60, "poll": 1}},
        "variable-in-path": {"args": {"nvidia_smi_path": "$ONPREM_LLM_NO_SUCH_VARIABLE/nvidia-smi",
                                      **nothing}},
    }  # fmt: skip
    answers, module_runs = compare(root, {**shell_cases, **module_cases})
    for name in shell_cases:
        assert_shell_answered(name, answers[name][0])
    for name in module_cases:
        assert "invocation" in answers[name][0], f"{name}: the shell answered"
    # One run per case for the reference task, one more per case left to the module.
    assert module_runs == len(shell_cases) + 2 * len(module_cases)
    return answers


@pytest.mark.parametrize(
    "name",
    [
        "h200",
        "b200-nvlink5",
        "gb200",
        "check-mode",
        "profile-override",
        "bytes-and-crlf",
        "fails",
        "fails-after-xml",
        "hangs",
        "not-executable",
        "missing",
        "version-unreadable",
        "vpd-unreadable",
        "task-environment",
        "async",
        "variable-in-path",
    ],
)
def test_the_answer_is_the_modules(fixture_cases: Answers, name: str) -> None:
    first, module = fixture_cases[name]
    assert_same_answer(name, first, module)


def test_what_the_cases_read(fixture_cases: Answers) -> None:
    """The cases reach what they are meant to (both answers being equal, one is enough)."""
    facts = {name: pair[0]["ansible_facts"]["onprem_gpu"] for name, pair in fixture_cases.items()}
    assert (facts["h200"]["hardware_profile"], facts["h200"]["nvswitch_count"]) == ("h200_hgx", 4)
    assert facts["h200"]["problems"] == []
    assert facts["b200-nvlink5"]["nvlink5_present"] is True
    assert facts["gb200"]["nvlink5_present"] is False
    odd = facts["bytes-and-crlf"]
    assert (odd["gpu_count"], odd["gpus"][0]["name"]) == (8, "H\ufffd")
    assert odd["kernel_module_version"] == "570.133.20"
    # 0000:05:00.0, .hidden, new\nline, ..dots and the dangling link; not the blank name.
    assert odd["nvswitch_count"] == 5
    assert odd["nvlink5_present"] is False  # .hidden is not globbed
    message = NO_DRIVER.decode("utf-8", "replace").strip()
    assert facts["fails"]["problems"][-1].endswith(f"nvidia-smi -q -x failed (rc 9): {message}")
    assert "exited rc 255 after printing XML" in facts["fails-after-xml"]["problems"][-1]
    assert facts["hangs"]["problems"][-1].endswith("failed (rc 124): timed out after 1 s")
    assert facts["not-executable"]["problems"][0].endswith("nvidia-smi is not an executable file")
    assert facts["missing"]["problems"][0].endswith("no-such-nvidia-smi is not an executable file")
    override = fixture_cases["profile-override"]
    assert override[0]["warnings"] == [facts["profile-override"]["profile_override_note"]]
    assert facts["vpd-unreadable"]["problems"][-1].endswith("(NVLink5 detection needs root)")
    assert facts["version-unreadable"]["problems"][0].startswith("cannot read ")


def test_nvidia_smi_found_on_path_as_the_module_finds_it(tmp_path: Path) -> None:
    """An empty PATH entry and a directory named nvidia-smi are passed over, as get_bin_path
    passes them over."""
    (tmp_path / "directory" / "nvidia-smi").mkdir(parents=True)
    found = Path(stand_in(tmp_path / "bin", FIXTURES / "h100_hgx.xml")).parent
    path = f"::{tmp_path / 'directory'}:{found}:{TOOLS}"
    cases = {"on-path": {"args": {**host("h100_hgx"), "profile": "b200_hgx"}}}
    answers, module_runs = compare(tmp_path, cases, path)
    first, module = answers["on-path"]
    assert_same_answer("on-path", first, module)
    assert_shell_answered("on-path", first)
    assert module_runs == 1
    facts = first["ansible_facts"]["onprem_gpu"]
    assert (facts["detected_profile"], facts["problems"]) == ("h100_hgx", [])
    assert first["warnings"] == [facts["profile_override_note"]]


def test_a_file_on_path_without_execute_permission_is_left_to_the_module(tmp_path: Path) -> None:
    """Whether such a file counts depends on its mode bits, not on `test -x` for this user."""
    (tmp_path / "decoy").mkdir()
    (tmp_path / "decoy" / "nvidia-smi").write_text("#!/bin/sh\n")
    found = Path(stand_in(tmp_path / "bin", FIXTURES / "h100_hgx.xml")).parent
    cases = {"decoy": {"args": host("h100_hgx")}}
    answers, module_runs = compare(tmp_path, cases, f"{tmp_path / 'decoy'}:{found}:{TOOLS}")
    first, module = answers["decoy"]
    assert_same_answer("decoy", first, module)
    assert "invocation" in first and module_runs == 2
    assert first["ansible_facts"]["onprem_gpu"]["gpu_count"] == 8  # the stand-in, not the decoy


def test_nvidia_smi_not_installed(tmp_path: Path) -> None:
    cases = {"none": {"args": {"proc_root": str(tmp_path), "sys_root": str(tmp_path)}}}
    answers, module_runs = compare(tmp_path, cases)
    first, module = answers["none"]
    assert_same_answer("none", first, module)
    assert_shell_answered("none", first)
    assert module_runs == 1
    searched = [*TOOLS.split(":"), "/sbin", "/usr/sbin", "/usr/local/sbin"]
    if not shutil.which("nvidia-smi", path=":".join(searched)):
        assert first["ansible_facts"]["onprem_gpu"]["problems"] == [
            "NVIDIA kernel module not loaded: /proc/driver/nvidia/version is absent",
            "nvidia-smi not found: the NVIDIA userspace driver is not installed",
        ]


SHELLS = [shell for shell in ("/bin/sh", "dash", "bash") if shutil.which(shell)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("trees", ["odd", "b200", "nothing"])
def test_readings_are_the_modules_readings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    shell: str,
    trees: str,
) -> None:
    """The HostReadings parsed from the command's output, run by each POSIX shell at hand
    (Debian's /bin/sh is dash, RHEL's is bash), equal those the module hands to build_facts:
    nvidia-smi's bytes and rc, the version text (CRLF read as the module's text mode reads it),
    the listing with hidden and odd names, the VPDs in the module's sorted glob order."""
    if trees == "odd":
        smi = stand_in(tmp_path / "smi", FIXTURES / "h200_hgx.xml", b"\xfe\r\n", rc=3)
        args = {"nvidia_smi_path": smi, **odd_trees(tmp_path / "trees"), "timeout": 20}
    elif trees == "b200":
        args = {"nvidia_smi_path": stand_in(tmp_path / "smi", FIXTURES / "b200_hgx.xml"),
                **host("b200_hgx")}  # fmt: skip
    else:
        args = {"nvidia_smi_path": str(tmp_path / "none"), "proc_root": str(tmp_path),
                "sys_root": str(tmp_path), "profile": "h100_hgx"}  # fmt: skip
    module_readings: list[HostReadings] = []

    def recorded(readings: HostReadings) -> dict[str, Any]:
        module_readings.append(readings)
        return build_facts(readings)

    monkeypatch.setattr(gpu_facts_module, "build_facts", recorded)
    monkeypatch.setattr(gpu_facts_module.AnsibleModule, "warn", lambda self, message: None)
    with patch_module_args(args), pytest.raises(SystemExit):
        gpu_facts_module.main()
    capsys.readouterr()
    options = judged_options(args)
    assert options is not None
    output = subprocess.run(
        [shell, "-c", read_script(options)], capture_output=True, text=True, check=True
    ).stdout
    assert parse_readings(options, output) == module_readings[0]
    if trees == "odd":
        assert len(module_readings[0].ib_vpds) == 5 and module_readings[0].proc_version
        assert "\r" not in module_readings[0].proc_version


@pytest.mark.parametrize("case", ["through-a-file", "dangling-link", "version-directory", "vpd"])
def test_what_the_shell_cannot_word_exits_3(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """Where the module would put an OSError's words in a problem (or read through a dangling
    link), the script exits 3 (no answer: the module runs); the module's own problem shows the
    case is one."""
    proc, sys_root = tmp_path / "proc", tmp_path / "sys"
    (proc / "driver").mkdir(parents=True)
    if case == "through-a-file":
        (proc / "driver" / "nvidia").write_text("")  # open(.../nvidia/version): ENOTDIR
    elif case == "dangling-link":
        (proc / "driver" / "nvidia").symlink_to(tmp_path / "nowhere")
    elif case == "version-directory":
        (proc / "driver" / "nvidia" / "version").mkdir(parents=True)
    else:
        (sys_root / "class" / "infiniband" / "mlx5_0" / "device" / "vpd").mkdir(parents=True)
    args = {"nvidia_smi_path": str(tmp_path / "none"), "proc_root": str(proc),
            "sys_root": str(sys_root)}  # fmt: skip
    options = judged_options(args)
    assert options is not None
    script = subprocess.run(
        ["/bin/sh", "-c", read_script(options)], capture_output=True, check=False
    )
    assert script.returncode == 3
    monkeypatch.setattr(gpu_facts_module.AnsibleModule, "warn", lambda self, message: None)
    with patch_module_args(args), pytest.raises(SystemExit):
        gpu_facts_module.main()
    problems = json.loads(capsys.readouterr().out)["ansible_facts"]["onprem_gpu"]["problems"]
    if case == "dangling-link":  # ENOENT through the link: absent, yet the shell cannot tell
        assert "NVIDIA kernel module not loaded" in problems[1]
    else:
        assert any(problem.startswith("cannot read ") for problem in problems), problems


@pytest.mark.parametrize(
    "args",
    [
        {"proc_root": "proc"},
        {"sys_root": "~/sys"},
        {"sys_root": "/sys[0]"},
        {"nvidia_smi_path": "bin/nvidia-smi"},
        {"nvidia_smi_path": "$HOME/nvidia-smi"},
        {"timeout": "60"},
        {"timeout": True},
        {"profile": 1},
        {"gather_subset": "all"},
    ],
)
def test_options_not_plain_enough_are_left_to_the_module(args: dict[str, Any]) -> None:
    assert judged_options(args) is None


def test_options_and_their_defaults() -> None:
    assert judged_options({}) == {
        "nvidia_smi_path": None,
        "proc_root": "/proc",
        "sys_root": "/sys",
        "profile": "",
        "timeout": 60,
    }
    assert judged_options({"nvidia_smi_path": ""})["nvidia_smi_path"] == ""  # type: ignore[index]
    assert _ancestors("/proc//driver/nvidia/version") == [
        "/proc/driver/nvidia",
        "/proc/driver",
        "/proc",
        "/",
    ]


def test_output_through_a_terminal_and_broken_output(tmp_path: Path) -> None:
    """A become terminal's \\r\\n and lines before the mark read the same; output cut short or
    not base64 reads as nothing, which leaves the task to the module."""
    options = judged_options(
        {"nvidia_smi_path": stand_in(tmp_path, FIXTURES / "h100_hgx.xml"), **host("h100_hgx")}
    )
    assert options is not None
    output = subprocess.run(
        ["/bin/sh", "-c", read_command(options)], capture_output=True, text=True, check=True
    ).stdout
    plain = parse_readings(options, output)
    assert plain is not None and plain.smi.rc == 0
    assert parse_readings(options, "sudo: a notice\r\n" + output.replace("\n", "\r\n")) == plain
    assert parse_readings(options, output.replace("@end", "")) is None
    assert parse_readings(options, output.replace("@out\n", "@out\n!!\n")) is None
    assert parse_readings(options, output.replace("@nvswitch", "@other")) is None
    assert parse_readings(options, "") is None
    assert os.path.basename(str(plain.smi.path)) == "nvidia-smi"
