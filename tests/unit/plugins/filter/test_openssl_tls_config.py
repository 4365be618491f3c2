"""openssl_tls_config: the OpenSSL configuration that holds engines (Python's ssl module, as
uvicorn builds its context) and Redis to the intermediate profile. Checked for real: a Python
TLS server started with OPENSSL_CONF set to the filter's output passes the scenarios' profile
check; without it, the same server accepts X448 and P-521."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.tls import FilterModule

openssl_tls_config = FilterModule().filters()["openssl_tls_config"]

REPO_ROOT = Path(__file__).resolve().parents[4]
ENGINE = yaml.safe_load((REPO_ROOT / "roles/engine/defaults/main.yml").read_text())
REDIS = yaml.safe_load((REPO_ROOT / "roles/redis/defaults/main.yml").read_text())

# A TLS server built as uvicorn builds it: its own context, then set_ciphers(ssl_ciphers).
SERVER = """
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
context.set_ciphers(sys.argv[4])
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    connection, _ = listener.accept()
    try:
        with context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\n")
    except (ssl.SSLError, OSError):
        pass
"""


@pytest.fixture(scope="module")
def key_pair(tls_key_pair) -> tuple[Path, Path]:
    return tls_key_pair("secp384r1")


def python_server(key_pair, ciphers: str, config: Path | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {name: value for name, value in os.environ.items() if name != "OPENSSL_CONF"}
    if config is not None:
        env["OPENSSL_CONF"] = str(config)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(key_pair[0]), str(key_pair[1]), ciphers],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _unused in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("role", [ENGINE, REDIS], ids=["engine", "redis"])
def test_the_roles_defaults_hold_a_python_server_to_the_profile(
    key_pair, tls_violations, tmp_path, role
):
    prefix = "engine" if role is ENGINE else "redis"
    ciphers = role[f"{prefix}_tls_ciphers"]
    config = tmp_path / "openssl.cnf"
    config.write_text(openssl_tls_config(role[f"{prefix}_tls_curves"], ciphers))
    server, endpoint = python_server(key_pair, ciphers, config)
    try:
        assert tls_violations(endpoint) == []
    finally:
        server.terminate()


def test_without_the_configuration_the_groups_are_openssls_defaults(key_pair, tls_violations):
    server, endpoint = python_server(key_pair, ENGINE["engine_tls_ciphers"], None)
    try:
        assert tls_violations(endpoint) == [
            f"{endpoint}: X448 group accepted",
            f"{endpoint}: P-521 group accepted",
        ]
    finally:
        server.terminate()


def test_the_text_names_the_groups_and_suites():
    text = openssl_tls_config(["X25519", "P-256"], "ECDHE-RSA-AES128-GCM-SHA256")
    assert "Groups = X25519:P-256\n" in text
    assert "CipherString = ECDHE-RSA-AES128-GCM-SHA256\n" in text
    assert "MinProtocol = TLSv1.2\n" in text
    assert text.startswith("openssl_conf = ")


@pytest.mark.parametrize(
    ("groups", "ciphers", "message"),
    [
        ([], "ECDHE-RSA-AES128-GCM-SHA256", "groups must be a non-empty list"),
        ("X25519", "ECDHE-RSA-AES128-GCM-SHA256", "groups must be a non-empty list"),
        (["X25519"], "", "ciphers must be a non-empty list"),
        (["X25519\nGroups = X448"], "ECDHE-RSA-AES128-GCM-SHA256", "groups has names OpenSSL"),
    ],
)
def test_bad_arguments_are_refused(groups, ciphers, message):
    with pytest.raises(AnsibleFilterError, match=message):
        openssl_tls_config(groups, ciphers)
