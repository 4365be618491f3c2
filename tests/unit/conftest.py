"""Make the collection importable as ansible_collections.onprem.llm for plugin unit tests.

collections/ansible_collections/onprem/llm is a committed link to the repository root, the
same path ansible-playbook uses when run from a checkout.
"""

import datetime
import importlib.util
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

# Under CI=true the property tests draw the same examples on every run, so CI's verdict does
# not depend on luck; locally they search afresh and pin what they find with @example.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / "collections"

if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))


@pytest.fixture(autouse=True, scope="session")
def _audit_log_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The checkout's ansible.cfg enables the onprem.llm.audit_log callback: the tests'
    ansible-playbook runs record to a file of their own, not the user's audit log."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ONPREM_LLM_AUDIT_LOG", str(tmp_path_factory.mktemp("audit") / "audit.jsonl"))
        patch.setenv("ONPREM_LLM_AUDIT_SYSLOG", "false")
        yield


def _required_tool(name: str, install: str) -> str:
    """A tool's path. Without it the test is skipped, except under CI=true, where nothing may be
    skipped and it fails."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is missing: {install}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: a test may not be skipped)")
        pytest.skip(reason)
    return path


@pytest.fixture
def promtool() -> str:
    return _required_tool("promtool", "run tests/harness/install-deps.sh")


def ansible_playbook(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook with this checkout's collection; env adds to the environment."""
    return subprocess.run(
        ["ansible-playbook", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), **(env or {})},
        timeout=timeout,
    )


FAILING_MODULE = """#!/usr/bin/python
import json, sys
print(json.dumps({"failed": True, "msg": "the %s module was called"}))
sys.exit(1)
"""


def run_local_play(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    *args: str,
    failing_modules: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`tasks` as one play on localhost (local connection, this interpreter). Each name in
    failing_modules is replaced by a module that fails with "the NAME module was called" (a
    module in the play's library path, which ansible.legacy.NAME resolves to first), so a run
    that passes made no call to it."""
    library = tmp_path / "library"
    library.mkdir(exist_ok=True)
    for stale in library.glob("*.py"):
        stale.unlink()
    for name in failing_modules:
        (library / f"{name}.py").write_text(FAILING_MODULE % name)
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    )
    return ansible_playbook(
        "-i", "localhost,", "-c", "local", *args,
        "-e", f"ansible_python_interpreter={sys.executable}", str(playbook),
        env={"ANSIBLE_LIBRARY": str(library), "ANSIBLE_NOCOLOR": "1", **(env or {})},
    )  # fmt: skip


def play_recap(result: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("localhost"))


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    return _required_tool("systemd-analyze", "install systemd")


@pytest.fixture
def validate_input(tmp_path: Path) -> Callable[[dict], subprocess.CompletedProcess[str]]:
    """Run playbooks/validate_input.yml against an inventory given as a dict.

    The validation play is controller-side only, so the inventory's hosts need not exist.
    """

    def run(inventory: dict) -> subprocess.CompletedProcess[str]:
        inventory_file = tmp_path / "hosts.yml"
        inventory_file.write_text(yaml.safe_dump(inventory))
        # What every site gives its monitoring hosts (the sign-in to Prometheus); tests of it
        # set their own as host variables, which win over these.
        (tmp_path / "group_vars").mkdir(exist_ok=True)
        (tmp_path / "group_vars" / "monitoring.yml").write_text(
            yaml.safe_dump({"prometheus_web_users": {"operator": "a-test-operator-password"}})
        )
        playbook = REPO_ROOT / "playbooks" / "validate_input.yml"
        return ansible_playbook(
            "-i",
            str(inventory_file),
            str(playbook),
            env={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"},
            timeout=180,
        )

    return run


@pytest.fixture
def controller_play(tmp_path: Path) -> Callable[[list, Path | dict], tuple[Any, dict]]:
    """Run a play whose tasks read the site on the controller (no host is reached) against an
    inventory path or dict; the run and its JSON report ({"plays": [{"tasks": [{"hosts"}]}]})."""

    def run(play: list, inventory: Path | dict) -> tuple[subprocess.CompletedProcess[str], dict]:
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump(play))
        if isinstance(inventory, dict):
            path = tmp_path / "hosts.yml"
            path.write_text(yaml.safe_dump(inventory))
            (tmp_path / "group_vars").mkdir(exist_ok=True)
            (tmp_path / "group_vars" / "all.yml").write_text("prometheus_web_users: {a: b}\n")
            inventory = path
        result = ansible_playbook(
            "-i",
            str(inventory),
            str(playbook),
            env={
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            },
        )
        start = result.stdout.find("{")
        report = json.JSONDecoder().raw_decode(result.stdout[start:])[0] if start >= 0 else {}
        return result, report

    return run


def _assert_rejected(
    result: subprocess.CompletedProcess[str], expected: list[str], case: str
) -> str:
    """The run failed and its output names every expected text; returns the output."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: accepted\n{output}"
    for text in expected:
        assert text in output, f"{case}: {text!r} not in output:\n{output}"
    return output


@pytest.fixture
def assert_rejected() -> Callable[[subprocess.CompletedProcess[str], list[str], str], str]:
    """Bad input: a failed validation run whose output names the variable and what was wrong."""
    return _assert_rejected


@pytest.fixture(scope="session")
def tls_violations() -> Callable[[str], list[str]]:
    """The check the scenarios run on every TLS endpoint (molecule/tls_profile.py): what an
    endpoint (host:port) does against Mozilla's intermediate profile, one line per finding."""
    spec = importlib.util.spec_from_file_location(
        "tls_profile", REPO_ROOT / "molecule" / "tls_profile.py"
    )
    assert spec and spec.loader
    tls_profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tls_profile)

    def run(command: str) -> tuple[int, str]:
        result = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=30, check=False
        )
        return result.returncode, result.stdout + result.stderr

    return lambda endpoint: tls_profile.violations(run, endpoint)


@pytest.fixture(scope="session")
def tls_key_pair(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """A self-signed certificate (CN localhost) and its EC key on the named curve, made once."""
    made: dict[str, tuple[Path, Path]] = {}

    def make(curve: str) -> tuple[Path, Path]:
        if curve not in made:
            directory = tmp_path_factory.mktemp(f"tls-{curve}")
            key, certificate = directory / "server.key", directory / "server.crt"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 f"ec_paramgen_curve:{curve}", "-nodes", "-keyout", str(key),
                 "-out", str(certificate), "-days", "2", "-subj", "/CN=localhost"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            made[curve] = (certificate, key)
        return made[curve]

    return make


@pytest.fixture(scope="session")
def run_role_play(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run tasks on localhost with a role's defaults and internal variables loaded, as the role
    sees them: run(role, name, tasks, play_vars={}, inventory="localhost,", env={}). Fails the
    test when ansible-playbook fails."""

    def run(
        role: str,
        name: str,
        tasks: list[dict],
        play_vars: dict | None = None,
        inventory: str = "localhost,",
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        role_dir = REPO_ROOT / "roles" / role
        playbook = tmp_path_factory.mktemp("play") / "play.yml"
        play = {
            "name": name,
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [
                str(role_dir / "defaults" / "main.yml"),
                str(role_dir / "vars" / "main.yml"),
            ],
            "vars": play_vars or {},
            "tasks": tasks,
        }
        playbook.write_text(yaml.safe_dump([play]))
        result = ansible_playbook(
            "-i", inventory, "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(playbook),
            env={"ANSIBLE_NOCOLOR": "1", **(env or {})},
            timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run


@pytest.fixture(scope="session")
def role_debug_messages(
    run_role_play: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., dict[str, Any]]:
    """run_role_play for debug tasks that evaluate a role's expressions: returns each task's
    msg by task name (the JSON callback's report)."""

    def run(role: str, name: str, tasks: list[dict], **kwargs: Any) -> dict[str, Any]:
        env = {
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        }
        result = run_role_play(role, name, tasks, env=env, **kwargs)
        report, _unused = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])
        return {
            task["task"]["name"]: task["hosts"]["localhost"]["msg"]
            for task in report["plays"][0]["tasks"]
        }

    return run


class CertificateMaker:
    """Certificates for tests, generated here (never recorded): a CA or a leaf signed by one,
    with EC P-256 keys, and PEM files of certificates and keys."""

    def issue(
        self,
        name: str,
        issuer: tuple[Any, Any] | None = None,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        ca: bool = False,
    ) -> tuple[Any, Any]:
        """(certificate, key); self-signed without issuer, else signed by issuer (cert, key)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer[0].subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(minutes=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        names = [x509.DNSName(item) for item in dns]
        names += [x509.IPAddress(ipaddress.ip_address(item)) for item in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key

    def write(self, path: Path, *items: Any) -> Path:
        """Certificates and private keys, in PEM, one after the other."""
        from cryptography.hazmat.primitives import serialization

        def pem(item: Any) -> bytes:
            if hasattr(item, "public_bytes") and hasattr(item, "subject"):
                return bytes(item.public_bytes(serialization.Encoding.PEM))
            return bytes(
                item.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

        path.write_bytes(b"".join(pem(item) for item in items))
        return path


@pytest.fixture(scope="session")
def certificates() -> CertificateMaker:
    """Generated test certificates: certificates.issue(...) and certificates.write(path, ...)."""
    return CertificateMaker()
