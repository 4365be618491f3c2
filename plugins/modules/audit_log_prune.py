"""Documentation of the audit_log_prune action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: audit_log_prune
short_description: Delete playbook-run audit records older than the retention
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - Applies the retention of playbook runs to the controller's audit log, the JSON-lines file
    the C(onprem.llm.audit_log) callback writes.
  - Records older than O(days) leave the start of the log once the oldest is a day past that
    (so a large log is checked and rewritten at most once a day), and one C(pruned) record, signed
    with the callback's key, stands in for them, so the records kept still verify with
    C(onprem-llm audit verify) and a record deleted later is still found.
  - The log is checked first. A log that does not verify is left as it is, with a warning, so
    that an operator runs C(onprem-llm audit verify) and looks before anything is deleted.
  - Works under the lock the callback appends under, so the run that prunes keeps recording.
  - In check mode it counts the records it would remove.
options:
  days:
    description: Records older than this many days are removed; 1 or more.
    type: int
    required: true
  path:
    description: The audit log; by default the callback's C(path) setting.
    type: path
  key_file:
    description:
      - The file holding the HMAC key; by default the callback's C(key_file) setting.
      - Without a key the stand-in record is not signed.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.llm.controller_action
"""

EXAMPLES = r"""
- name: Keep the playbook-run records for a year
  onprem.llm.audit_log_prune:
    days: 365
  run_once: true
"""

RETURN = r"""
path:
  description: The audit log.
  returned: always
  type: str
removed:
  description: Records removed (check mode, that would be removed).
  returned: always
  type: int
kept:
  description: Records kept.
  returned: always
  type: int
before:
  description: Records older than this time are removed (ISO 8601).
  returned: when the log exists and verifies
  type: str
"""
