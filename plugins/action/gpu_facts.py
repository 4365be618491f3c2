# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.gpu_facts: the module's readings taken with one shell command.

The module is a Python start on the host for every run of the roles. One POSIX shell command
takes the same readings instead: it finds nvidia-smi as AnsibleModule.get_bin_path does (PATH,
then /sbin, /usr/sbin, /usr/local/sbin), runs it under coreutils timeout, reads
/proc/driver/nvidia/version, lists /proc/driver/nvidia-nvswitch/devices and reads
/sys/class/infiniband/*/device/vpd, each in base64 after a mark line (a become terminal ends
lines with \\r\\n). The facts are then built on the controller by the module's own build_facts,
so the answer is the module's for the same host.

Whatever the shell cannot tell apart exactly runs the module, which gives its own answer:
a version file or VPD that exists but cannot be read (the module words the error), a version
file whose absence is not plain (a dangling link, a directory that cannot be searched),
an executable test that depends on the user, a host without coreutils timeout, mktemp or
base64, nvidia-smi that could not be started or was killed by a signal, a relative PATH
entry, options the module would expand ($VAR, ~) or that are not plain, a task environment,
async, a host without a POSIX shell, any output that does not parse.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils._nvidia_smi import (
    HostReadings,
    SmiRun,
    build_facts,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

FACT_NAME = "onprem_gpu"
_MARK = "onprem-llm-gpu-facts"
_END = "@end"
_TIMEOUT_RC = 124  # coreutils timeout(1)
_OPTIONS = frozenset({"nvidia_smi_path", "proc_root", "sys_root", "profile", "timeout"})
_GLOB_MAGIC = frozenset("*?[")

# get_bin_path: PATH (empty entries skipped), then the sbin directories; the first candidate
# that exists, is not a directory and has an execute bit wins. `test -x` true means it has one;
# false for a file that exists leaves the answer to the module (for root it would mean none,
# for another user it may be a bit that is not theirs).
_SHELL_FUNCTIONS = r"""bin() {
b=
o=$IFS
IFS=:
set -f
l=$PATH:/sbin:/usr/sbin:/usr/local/sbin
for d in $l; do
case $d in '') continue;; /*) ;; *) exit 3;; esac
case $d in */) p=$d$1;; *) p=$d/$1;; esac
if [ -e "$p" ] && [ ! -d "$p" ]; then
[ -x "$p" ] || exit 3
b=$p
break
fi
done
IFS=$o
set +f
}
"""


def _plain_path(value: Any) -> bool:
    """An absolute path the module's type=path leaves as it is (no $VAR, no ~)."""
    return isinstance(value, str) and value.startswith("/") and "$" not in value


def judged_options(args: dict[str, Any]) -> dict[str, Any] | None:
    """The module's parameters for these task arguments, or None where the module decides."""
    if set(args) - _OPTIONS:
        return None
    options = {
        "nvidia_smi_path": args.get("nvidia_smi_path"),
        "proc_root": args.get("proc_root", "/proc"),
        "sys_root": args.get("sys_root", "/sys"),
        "profile": args.get("profile", ""),
        "timeout": args.get("timeout", 60),
    }
    given = options["nvidia_smi_path"]
    if given not in (None, "") and not _plain_path(given):
        return None
    if not (_plain_path(options["proc_root"]) and _plain_path(options["sys_root"])):
        return None
    if _GLOB_MAGIC & set(options["sys_root"]):  # the module globs below sys_root
        return None
    timeout = options["timeout"]  # an int, tagged (a subclass) where it came from YAML
    if not isinstance(options["profile"], str) or not isinstance(timeout, int):
        return None
    if isinstance(timeout, bool):
        return None
    if any("\0" in str(value) for value in options.values()):
        return None
    return options


def _paths(options: dict[str, Any]) -> dict[str, str]:
    """The paths the module reads, joined as it joins them."""
    proc_root, sys_root = options["proc_root"], options["sys_root"]
    return {
        "version": posixpath.join(proc_root, "driver", "nvidia", "version"),
        "nvswitch": posixpath.join(proc_root, "driver", "nvidia-nvswitch", "devices"),
        "infiniband": posixpath.join(sys_root, "class", "infiniband"),
    }


def _ancestors(path: str) -> list[str]:
    """The directories path resolution walks through to `path`, deepest first."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[:count]) for count in range(len(parts) - 1, -1, -1)]


def read_script(options: dict[str, Any]) -> str:
    """The POSIX sh script printing the readings after the mark; exit 3 where the module must
    answer."""
    paths = _paths(options)
    quote = shlex.quote
    given = options["nvidia_smi_path"]
    if given:
        find_smi = (
            f"if [ -f {quote(given)} ] && [ -x {quote(given)} ]; then s={quote(given)}; "
            "else s=; echo @badsmi; fi\n"
        )
    else:
        find_smi = "bin nvidia-smi\ns=$b\n"
    version = paths["version"]
    ancestors = " ".join(quote(item) for item in _ancestors(version))
    return (
        "exec 2>/dev/null\n"
        "unset GLOBIGNORE\n"
        f"{_SHELL_FUNCTIONS}"
        "t=$(mktemp -d) || exit 3\n"
        "trap 'rm -rf \"$t\"' EXIT\n"
        "trap 'exit 3' HUP INT TERM\n"
        f"echo {_MARK}\n"
        f"{find_smi}"
        'if [ -n "$s" ]; then\n'
        "bin timeout\n"
        '[ -n "$b" ] || exit 3\n'
        # The module's run_command expands $VAR in each argument.
        "case $s$b in *'$'*) exit 3;; esac\n"
        f'"$b" {quote(str(options["timeout"]))} "$s" -q -x </dev/null >"$t/o" 2>"$t/e"\n'
        "r=$?\n"
        # Not started (the module fails or words it itself) or killed by a signal (timeout
        # raises it again: the module sees a negative rc).
        "case $r in 126|127) exit 3;; esac\n"
        '[ "$r" -gt 128 ] && [ "$r" -le 192 ] && exit 3\n'
        'echo "@smi $r"\n'
        "printf '%s' \"$s\" | base64 || exit 3\n"
        'echo @out; base64 <"$t/o" || exit 3\n'
        'echo @err; base64 <"$t/e" || exit 3\n'
        "fi\n"
        f"v={quote(version)}\n"
        'if [ -e "$v" ]; then\n'
        '[ -f "$v" ] && [ -r "$v" ] || exit 3\n'
        'echo @version; base64 <"$v" || exit 3\n'
        "else\n"
        # Absent only where the deepest existing directory is searchable and the next name
        # is not in it: open() then fails with ENOENT, which the module reads as absent.
        "c=$v; a=\n"
        f"for d in {ancestors}; do\n"
        'if [ -e "$d" ]; then [ -d "$d" ] && [ -x "$d" ] && [ ! -L "$c" ] && a=1; break; fi\n'
        "c=$d\n"
        "done\n"
        '[ -n "$a" ] || exit 3\n'
        "echo @noversion\n"
        "fi\n"
        f"n={quote(paths['nvswitch'])}\n"
        "echo @nvswitch\n"
        'if [ -d "$n" ] && [ -r "$n" ]; then\n'
        '[ -x "$n" ] || exit 3\n'
        'for e in "$n"/* "$n"/.[!.]* "$n"/..?*; do\n'
        'if [ -e "$e" ] || [ -L "$e" ]; then printf \'%s/\' "${e##*/}"; fi\n'
        "done | base64 || exit 3\n"
        "fi\n"
        f"i={quote(paths['infiniband'])}\n"
        "w=\n"
        'for f in "$i"/*/device/vpd; do\n'
        '[ -e "$f" ] || [ -L "$f" ] || continue\n'
        '[ -f "$f" ] && [ -r "$f" ] || exit 3\n'
        'echo @vpd; base64 <"$f" || exit 3\n'
        'x=${f#"$i"/}\n'
        "w=$w${x%/device/vpd}/\n"
        "done\n"
        "echo @vpdnames\n"
        "printf '%s' \"$w\" | base64 || exit 3\n"
        f"echo {_END}\n"
    )


def read_command(options: dict[str, Any]) -> str:
    """The command to run: read_script by /bin/sh, whatever shell the connection runs it from
    (ansible_shell_executable), since the script needs POSIX word splitting and globbing."""
    return f"exec /bin/sh -c {shlex.quote(read_script(options))}"


def _sections(stdout: str) -> list[tuple[str, bytes]] | None:
    """The (mark line, decoded data) pairs between the mark and the end, or None."""
    lines = stdout.replace("\r", "").split("\n")
    try:
        start = lines.index(_MARK)
        end = lines.index(_END, start)
    except ValueError:
        return None
    sections: list[tuple[str, list[str]]] = []
    for line in lines[start + 1 : end]:
        if line.startswith("@"):
            sections.append((line, []))
        elif not sections:
            return None
        else:
            sections[-1][1].append(line)
    try:
        return [
            (key, base64.b64decode("".join("".join(chunk).split()), validate=True))
            for key, chunk in sections
        ]
    except (binascii.Error, ValueError):
        return None


def _names(raw: bytes) -> list[str] | None:
    """Names printed as name/name/.../, as os.listdir gives them (str, surrogateescape)."""
    text = raw.decode("utf-8", "surrogateescape")
    if text and not text.endswith("/"):
        return None
    return text.split("/")[:-1] if text else []


def _text(raw: bytes) -> str:
    """What open(path, encoding="utf-8", errors="replace").read() gives: universal newlines."""
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def parse_readings(options: dict[str, Any], stdout: str) -> HostReadings | None:
    """The module's HostReadings from read_script's output, or None when it does not parse."""
    sections = _sections(stdout)
    if sections is None:
        return None
    problems: list[str] = []
    given, timeout = options["nvidia_smi_path"], options["timeout"]
    smi = SmiRun(path=None)
    try:
        key, data = sections.pop(0)
        if key == "@badsmi" and given and not data:
            problems.append(f"{given} is not an executable file")
            key, data = sections.pop(0)
        elif given and not key.startswith("@smi "):
            return None
        elif key.startswith("@smi "):
            path, rc = data.decode("utf-8"), int(key.split(" ", 1)[1])
            (out_key, stdout_bytes), (err_key, stderr_bytes) = sections.pop(0), sections.pop(0)
            if (out_key, err_key) != ("@out", "@err") or (given and path != given):
                return None
            if rc == _TIMEOUT_RC:
                smi = SmiRun(path=path, rc=rc, stdout=b"", stderr=f"timed out after {timeout} s")
            else:
                smi = SmiRun(path=path, rc=rc, stdout=stdout_bytes, stderr=stderr_bytes)
            key, data = sections.pop(0)
        if key == "@version":
            proc_version: str | None = _text(data)
        elif key == "@noversion" and not data:
            proc_version = None
        else:
            return None
        key, data = sections.pop(0)
        nvswitch = _names(data) if key == "@nvswitch" else None
        vpd_key, names_data = sections.pop()
        vpd_names = _names(names_data) if vpd_key == "@vpdnames" else None
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    if nvswitch is None or vpd_names is None or len(vpd_names) != len(sections):
        return None
    if any(key != "@vpd" for key, _data in sections):
        return None
    infiniband = _paths(options)["infiniband"]
    vpds = sorted(
        zip((f"{infiniband}/{name}/device/vpd" for name in vpd_names), sections, strict=True),
        key=lambda item: item[0],
    )
    return HostReadings(
        smi=smi,
        proc_version=proc_version,
        nvswitch_devices=sorted(nvswitch),
        ib_vpds=[data for _path, (_key, data) in vpds],
        problems=problems,
        profile_override=options["profile"] or "",
    )


def answer(readings: HostReadings) -> dict[str, Any]:
    """The module's answer for these readings (its JSON round trip included)."""
    facts = json.loads(json.dumps(build_facts(readings)))
    result: dict[str, Any] = {"changed": False, "ansible_facts": {FACT_NAME: facts}}
    if facts["profile_override_note"]:
        result["warnings"] = [facts["profile_override_note"]]
    return result


class ActionModule(ShellFirstAction):
    module = "onprem.llm.gpu_facts"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        options = judged_options(args)
        if options is None or self._compute_environment_string():
            return None
        read = self.shell_stdout(read_command(options))
        readings = parse_readings(options, read) if read is not None else None
        return answer(readings) if readings is not None else None
