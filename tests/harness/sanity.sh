#!/usr/bin/env bash
# ansible-test sanity on the working tree. ansible-test needs the collection at a path ending in
# ansible_collections/onprem/llm, so it runs on a copy of the tracked and new files there (the
# checkout's own collections/ link would otherwise be read as content).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
copy="$repo/.cache/sanity/ansible_collections/onprem/llm"

# A private HOME, as for ansible-lint: nothing under ~/.ansible shadows the copy, and the pip
# bootstrap below stays out of the user's cache. pip keeps the user's configuration (mirrors).
if [[ -z ${PIP_CONFIG_FILE:-} && -f $HOME/.config/pip/pip.conf ]]; then
  export PIP_CONFIG_FILE="$HOME/.config/pip/pip.conf"
fi
export HOME="$repo/.cache/sanity-home"

# ansible-test's venvs get pip through get-pip.py from ci-files.testing.ansible.com, which sites
# with package mirrors only cannot reach: the same pip release comes from the package index.
pip_version="$(python -c '
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version=None))["pip"])')"
cache="$HOME/.ansible/test/cache"
if [[ ! -f $cache/get_pip_${pip_version//./_}.py ]]; then
  mkdir -p "$cache"
  pip download --quiet --no-deps --only-binary=:all: --dest "$cache" "pip==$pip_version"
  cp "$repo/tests/sanity/get_pip.py" "$cache/get_pip_${pip_version//./_}.py"
fi

rm -rf "$repo/.cache/sanity"
mkdir -p "$copy"
cd "$repo"
git ls-files -z --cached --others --exclude-standard -- . ':!collections' \
  | while IFS= read -r -d '' path; do [[ -e $path ]] && printf '%s\0' "$path"; done \
  | tar --null --files-from=- -cf - | tar -xf - -C "$copy"
cd "$copy"
# Its own repository: ansible-test lists a collection's files with git, and the checkout's
# repository ignores .cache.
git init --quiet .
# no-illegal-filenames: the recorded /proc trees hold PCI addresses (0000:08:00.0), and
# ansible-test cannot even report a path with a colon (its output parser fails).
exec ansible-test sanity --local --python "$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
  --skip-test no-illegal-filenames "$@"
