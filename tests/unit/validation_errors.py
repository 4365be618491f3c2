"""Reading a failed validation run: its failure message maps each host to its errors."""

from __future__ import annotations

import json
import re


def host_errors(output: str, host: str) -> str:
    """The errors the validation lists for one host, one a line ("" when it lists none)."""
    decoder = json.JSONDecoder()
    errors: list[str] = []
    for match in re.finditer(rf'"{re.escape(host)}": (?=\[)', output):
        errors.extend(decoder.raw_decode(output, match.end())[0])
    return "\n".join(errors)
