"""systemd_exec_args: an engine's command line for ExecStart, every argument kept whole."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.engine import FilterModule

systemd_exec_args = FilterModule().filters()["systemd_exec_args"]


def systemd_split(line: str) -> list[str]:
    """How systemd splits an Exec= line into arguments, for the characters the filter emits:
    double-quoted words with \\\\ and \\" escapes, $$ and %% for $ and %."""
    words, word, quoted, escaped, started = [], "", False, False, False
    for char in line:
        if escaped:
            word, escaped = word + char, False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted, started = not quoted, True
        elif char == " " and not quoted:
            if started or word:
                words.append(word)
            word, started = "", False
        else:
            word += char
    if started or word:
        words.append(word)
    return [word.replace("$$", "$").replace("%%", "%") for word in words]


@pytest.mark.parametrize(
    "args",
    [
        ["/opt/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--port", "8000"],
        ["vllm", "--override-generation-config", '{"temperature": 0.2, "top_p": 0.9}'],
        ["docker", "run", "--gpus", '"device=0,1"', "img@sha256:abc"],
        ["tgi", "--chat-template", "{% for m in messages %}{{ m['content'] }}{% endfor %}"],
        ["x", "", "a b", "back\\slash", "dollar$HOME", "percent%i", "it's", ";"],
    ],
)
def test_every_argument_reaches_the_process_whole(args):
    line = systemd_exec_args(args)
    assert systemd_split(line) == args
    assert "\n" not in line


def test_plain_arguments_stay_unquoted():
    assert systemd_exec_args(["vllm", "--port", "8000"]) == "vllm --port 8000"


def test_arguments_with_spaces_are_quoted():
    line = systemd_exec_args(["vllm", "--override-generation-config", '{"temperature": 0.2}'])
    assert line == 'vllm --override-generation-config "{\\"temperature\\": 0.2}"'


def test_variables_and_specifiers_are_not_expanded():
    assert systemd_exec_args(["echo", "$HOME", "%i"]) == "echo $$HOME %%i"


@pytest.mark.parametrize("bad", ["vllm --port 8000", None, {"a": 1}])
def test_not_a_list_is_rejected(bad):
    with pytest.raises(AnsibleFilterError, match="expected a list of arguments"):
        systemd_exec_args(bad)


def test_line_break_is_rejected():
    with pytest.raises(AnsibleFilterError, match="line break"):
        systemd_exec_args(["vllm", "a\nb"])
