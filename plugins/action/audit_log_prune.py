"""Apply the retention of playbook runs to the controller's audit log (the file the
onprem.llm.audit_log callback writes): records older than the retention leave the start of the
log and one signed record stands in for them (plugins/module_utils/_audit_chain.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.loader import callback_loader
from ansible_collections.onprem.llm.plugins.module_utils._audit_chain import (
    AuditKeyError,
    PruneError,
    load_key,
    prune,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._controller_action import ControllerAction

CALLBACK = "onprem.llm.audit_log"
# Records leave once the oldest is a day past the retention: a large log is checked and rewritten
# at most once a day, however often the site runs.
BATCH_DAYS = 1


def callback_option(name: str, task_vars: dict[str, Any]) -> Any:
    """The callback's own setting (its environment variable, ansible.cfg or default)."""
    # Loading the class registers its settings, under the name it resolved to.
    loaded = callback_loader.get_with_context(CALLBACK, class_only=True)
    return C.config.get_config_value(
        name,
        plugin_type="callback",
        plugin_name=loaded.plugin_load_context.plugin_resolved_name,
        variables=task_vars,
    )


class ActionModule(ControllerAction):
    """Works on the controller's file; no connection to any host."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result, args = self.start(
            tmp,
            task_vars,
            {
                "days": {"type": "int", "required": True},
                "path": {"type": "path"},
                "key_file": {"type": "path"},
            },
        )
        if args["days"] < 1:
            raise AnsibleActionFail(f"days must be 1 or more, got {args['days']}")
        path = Path(args["path"] or callback_option("path", task_vars)).expanduser()
        key_file = args["key_file"] or callback_option("key_file", task_vars)
        result.update(changed=False, path=str(path), removed=0, kept=0)
        if not path.exists():
            result["msg"] = f"{path}: no playbook-run audit log"
            return result
        try:
            key = load_key(Path(key_file).expanduser()) if key_file else None
            report = prune(
                path,
                args["days"],
                key,
                dry_run=bool(self._task.check_mode),
                batch_days=BATCH_DAYS,
            )
        except (OSError, AuditKeyError) as error:
            raise AnsibleActionFail(f"{path}: {error}") from None
        except PruneError as error:
            # Kept as it is: a log that does not verify is evidence; the operator looks first.
            result.update(msg=str(error), warnings=[str(error)])
            return result
        result.update(
            changed=report.removed > 0,
            removed=report.removed,
            kept=report.kept,
            before=report.before,
            msg=report.summary(),
        )
        return result
