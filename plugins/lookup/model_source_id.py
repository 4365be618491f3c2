# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The identity of a model source, recorded beside a staged model so that a re-run compares one
line instead of hashing every file of the model on the host and on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: model_source_id
author: onprem.llm maintainers (@onprem-llm)
version_added: "0.1.0"
short_description: One line that names what a staged model was made from
description:
  - The engine role writes this line into C(.onprem-llm-source.sha256) of a model directory
    after the model was copied, downloaded or unpacked and checked, and a later run stages the
    model again only when the line differs. A no-op run reads one small file per model
    instead of hashing every file of a model that may weigh hundreds of gigabytes.
  - C(type=url) gives the archive's sha256, lower case.
  - C(type=mirror) gives C(mirror:) and the sha256 of the sorted file names and their sha256
    values. The mirror's URL is left out, so moving the mirror does not fetch the model again.
  - C(type=path) gives C(path:) and the sha256 of the sorted relative path, size and
    modification time (nanoseconds) of every file under the controller's directory, links
    followed, as the copy reads them. It stats the files and never reads them, so it costs
    milliseconds for any model size. The directory's own path is left out.
  - C(type=none) gives an empty string.
options:
  _terms:
    description: The model source, as C(engine_model_source) or an C(engine_models) entry's
      C(source).
    required: true
    type: dict
"""

EXAMPLES = r"""
- name: Show what the model directory should record
  ansible.builtin.debug:
    msg: "{{ lookup('onprem.llm.model_source_id', engine_model_source) }}"
"""

RETURN = r"""
_raw:
  description: The identity, one line without a line break.
  type: list
  elements: str
"""

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_SHA256_HEX = frozenset("0123456789abcdef")


def _sha256(value: Any, name: str) -> str:
    text = str(value or "").strip().lower()
    if len(text) != 64 or not set(text) <= _SHA256_HEX:
        raise AnsibleLookupError(f"model_source_id: {name} must be 64 hex digits, not {value!r}")
    return text


def _tree_lines(root: str) -> list[str]:
    """relative path, size and mtime (ns) of every file under root, links followed."""
    lines = []
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        subdirectories.sort()
        for name in files:
            path = os.path.join(directory, name)
            status = os.stat(path)
            relative = os.path.relpath(path, root)
            lines.append(f"{relative}\0{status.st_size}\0{status.st_mtime_ns}")
    return sorted(lines)


def model_source_id(source: Mapping[str, Any]) -> str:
    if not isinstance(source, Mapping):
        raise AnsibleLookupError(f"model_source_id: the source must be a dict, not {source!r}")
    kind = source.get("type", "none")
    if kind == "none":
        return ""
    if kind == "url":
        return _sha256(source.get("sha256"), "source.sha256")
    if kind == "mirror":
        files = source.get("files") or []
        entries = sorted(
            f"{entry.get('name')}\0{_sha256(entry.get('sha256'), 'source.files[].sha256')}"
            for entry in files
        )
        return "mirror:" + hashlib.sha256("\n".join(entries).encode()).hexdigest()
    if kind == "path":
        root = str(source.get("path") or "")
        if not os.path.isdir(root):
            raise AnsibleLookupError(
                f"model_source_id: source.path {root!r} is not a directory on the controller"
            )
        lines = _tree_lines(root)
        return "path:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()
    raise AnsibleLookupError(
        f"model_source_id: source.type must be path, url, mirror or none, not {kind!r}"
    )


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[str]:
        return [model_source_id(term) for term in terms]
