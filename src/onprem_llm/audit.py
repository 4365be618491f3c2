"""Verify and prune the playbook-run audit log the onprem.llm.audit_log callback writes: the
collection's own code (plugins/module_utils/_audit_chain.py), which its prune action shares."""

from __future__ import annotations

from onprem_llm.collection_utils._audit_chain import (
    PRUNED,
    Problem,
    PruneError,
    PruneReport,
    VerifyReport,
    prune,
    verify,
)

__all__ = ["PRUNED", "Problem", "PruneError", "PruneReport", "VerifyReport", "prune", "verify"]
