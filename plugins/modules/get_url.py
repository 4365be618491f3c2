# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the get_url action plugin (the builtin, read first with one shell command)."""

DOCUMENTATION = r"""
module: get_url
short_description: Download a file, one shell command when it is already there with its checksum
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.get_url) with the same arguments and results. The roles of this collection
    download their keys, archives and model files with it.
  - The builtin module is a Python start on the host on every run, and with O(force) it
    downloads again a file that is already right. Given O(checksum) as C(algorithm:hex)
    (C(md5), C(sha1), C(sha224), C(sha256), C(sha384), C(sha512)), this action reads O(dest)
    with one shell command (coreutils C(stat) and the algorithm's sum program). A regular file
    whose digest is the checksum and that has the O(owner), O(group) and O(mode) asked is
    answered unchanged, as the module answers without O(force) (RV(msg) C(file already
    exists)), with O(force) or without, since a download could only bring the same bytes, or fail
    the checksum.
  - Any other case runs M(ansible.builtin.get_url) with the task's arguments unchanged (no
    O(checksum), a checksum file's URL, a missing or different file, a link or a directory at
    O(dest), a O(dest) with a variable to expand, any option other than O(url), O(dest),
    O(checksum), O(owner), O(group), O(mode), O(force) and O(timeout), a host with SELinux on,
    async).
options:
  url:
    description: As for M(ansible.builtin.get_url).
    type: str
    required: true
  dest:
    description: As for M(ansible.builtin.get_url); an absolute path to a file is read first.
    type: path
    required: true
  checksum:
    description:
      - As for M(ansible.builtin.get_url). C(algorithm:hex) is read first; C(algorithm:URL)
        always runs the module.
    type: str
    default: ""
  force:
    description:
      - As for M(ansible.builtin.get_url). A file whose digest is O(checksum) is answered
        unchanged with O(force=true) too.
    type: bool
    default: false
  timeout:
    description: As for M(ansible.builtin.get_url).
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
  - ansible.builtin.files
seealso:
  - module: ansible.builtin.get_url
"""

EXAMPLES = r"""
- name: Download the repository signing key
  onprem.llm.get_url:
    url: https://example.com/repo/key.asc
    dest: /etc/apt/keyrings/example.asc
    checksum: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    owner: root
    group: root
    mode: "0644"
    force: true
"""

RETURN = r"""
dest:
  description: The file.
  returned: success
  type: str
  sample: /etc/apt/keyrings/example.asc
url:
  description: The URL, its password masked.
  returned: success
  type: str
  sample: https://example.com/repo/key.asc
msg:
  description: What the module did; C(file already exists) when this action answers.
  returned: success
  type: str
  sample: file already exists
checksum_dest:
  description: SHA-1 of the file before a download; null when nothing was downloaded.
  returned: success
  type: str
checksum_src:
  description: SHA-1 of the file downloaded; null when nothing was downloaded.
  returned: success
  type: str
elapsed:
  description: Seconds the download took.
  returned: success
  type: int
  sample: 0
"""
