"""Vault passwords and redaction: secrets reach ansible-playbook, never disk or command lines.

A password from the environment is answered to ansible-playbook's prompt through the pty that
ansible-runner holds (pexpect), so it is in no file, argument or child environment. A password
file is handed to ansible-playbook by path, which keeps vault client scripts working.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

VAULT_PASSWORD_ENV = "ONPREM_LLM_VAULT_PASSWORD"
REDACTED = "********"
_VAULT_PROMPT = r"Vault password:\s*?$"
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|COOKIE", re.IGNORECASE)
# Names that match the pattern but hold settings or paths, kept readable in artifacts.
_NOT_SECRET = {
    "ANSIBLE_HOST_KEY_CHECKING",
    "ANSIBLE_PRIVATE_KEY_FILE",
    "ANSIBLE_VAULT_PASSWORD_FILE",
    "SSH_AUTH_SOCK",
}


class SecretError(ValueError):
    """A vault password that was asked for but cannot be read."""


@dataclass(frozen=True)
class VaultPassword:
    """Where the vault password comes from: a file, an environment variable, or memory."""

    file: Path | None = None
    env_var: str | None = None
    value: str | None = field(default=None, repr=False)

    def cmdline_args(self) -> list[str]:
        if self.file is not None:
            return ["--vault-password-file", str(self.file)]
        return ["--ask-vault-pass"]

    def prompt_answers(self) -> dict[str, str]:
        """Prompt pattern -> answer, kept in memory only."""
        if self.file is not None:
            if not self.file.is_file():
                raise SecretError(f"--vault-password-file: {self.file} is not a file")
            return {}
        if self.value is not None:
            return {_VAULT_PROMPT: self.value}
        name = self.env_var or VAULT_PASSWORD_ENV
        secret = os.environ.get(name)
        if not secret:
            raise SecretError(f"--vault-password-env: {name} is not set or empty")
        return {_VAULT_PROMPT: secret}

    def env_names(self) -> set[str]:
        """Environment variables to keep out of the child and the artifacts."""
        return {VAULT_PASSWORD_ENV} | ({self.env_var} if self.env_var else set())


def is_secret_name(name: str) -> bool:
    return name not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy with the values of secret-looking variables replaced."""
    return {key: REDACTED if is_secret_name(key) else value for key, value in env.items()}
