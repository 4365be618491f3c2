"""Check a role's variables against its own meta/argument_specs.yml, reporting only what is wrong.

ansible.builtin.validate_argument_spec needs the spec passed in and, on failure, prints the
whole spec; every role's preflight would otherwise repeat the same two tasks to work round that.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action.validate_argument_spec import ActionModule as ValidateArgumentSpec


class ActionModule(ValidateArgumentSpec):
    """Validate the calling role's variables; no connection to the host."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super(ValidateArgumentSpec, self).run(tmp, task_vars)
        role_path = self._task.args.get("role_path") or task_vars.get("role_path")
        if not role_path:
            raise AnsibleActionFail("role_arguments runs inside a role, or needs role_path")
        entry_point = self._task.args.get("entry_point", "main")
        skip = set(self._task.args.get("skip") or [])

        spec_file = os.path.join(role_path, "meta", "argument_specs.yml")
        specs = self._loader.load_from_file(spec_file)["argument_specs"]
        options = {
            name: option
            for name, option in specs[entry_point].get("options", {}).items()
            if name not in skip
        }

        values = self.get_args_from_task_vars(options, task_vars)
        errors = (
            ArgumentSpecValidator(options)
            .validate(values, validate_role_argument_spec=True)
            .error_messages
        )
        role = os.path.basename(os.path.normpath(role_path))
        if errors:
            result.update(
                failed=True,
                argument_errors=errors,
                msg=f"Variables of role {role} do not match its argument specs:\n"
                + "\n".join(errors),
            )
        else:
            result.update(changed=False, msg=f"Variables of role {role} match its argument specs")
        return result
