"""Documentation of the role_arguments action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: role_arguments
short_description: Check a role's variables against its meta/argument_specs.yml
version_added: "0.1.0"
author: onprem.llm maintainers
description:
  - Reads the calling role's C(meta/argument_specs.yml) and validates the role's variables as
    they are set for the host, without connecting to it.
  - On failure reports only the variables that are wrong, naming each one, not the whole spec.
  - Used by each role's C(tasks/preflight.yml), also from the site's validation play.
options:
  entry_point:
    description: Entry point of the argument specs to check against.
    type: str
    default: main
  skip:
    description:
      - Variables left out of this check, such as those that reference the vault and are
        validated only where they are defined.
    type: list
    elements: str
    default: []
  role_path:
    description: Path of the role; defaults to the calling role.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Validate the role's variables against meta/argument_specs.yml
  onprem.llm.role_arguments:
"""

RETURN = r"""
argument_errors:
  description: One message per variable that does not match the spec.
  returned: failure
  type: list
  elements: str
"""
