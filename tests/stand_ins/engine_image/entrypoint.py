"""Entrypoint of the stand-in engine image: takes vLLM 0.32.0's server arguments, like its image.

Like vLLM it prints its argument list on --help (the one recorded from vLLM 0.32.0, baked into
the image), refuses an option that list lacks with argparse's own words and exit status 2, and
refuses to start without the model directory (mounted read-only from the model store); then it
serves the OpenAI API stand-in on --host/--port under --served-model-name.
"""

import argparse
import os
import re
import sys

HELP_FILE = "/usr/local/share/stand-in-engine/vllm-help.txt"
OPTION = re.compile(r"(?<![\w/.=-])(--?[A-Za-z][A-Za-z0-9_-]*)")

with open(HELP_FILE, encoding="utf-8") as handle:
    help_text = handle.read()
if any(argument == "--help" or argument.startswith("--help=") for argument in sys.argv[1:]):
    sys.stdout.write(help_text)
    sys.exit(0)

known = set(OPTION.findall(help_text))
unknown = []
for argument in sys.argv[1:]:
    if not argument.startswith("-") or re.match(r"^-\d", argument):
        continue
    option = argument.split("=", 1)[0]
    short_with_value = not option.startswith("--") and option[:2] in known
    if option not in known and option.split(".", 1)[0] not in known and not short_with_value:
        unknown.append(argument)
if unknown:
    sys.stderr.write(
        "usage: api_server.py [-h] ...\n"
        f"api_server.py: error: unrecognized arguments: {' '.join(unknown)}\n"
    )
    sys.exit(2)

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--served-model-name", default="")
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=8000)
options, _ = parser.parse_known_args()
if not os.path.isfile(os.path.join(options.model, "config.json")):
    sys.exit(f"stand-in engine: no model at {options.model}")
os.execv(
    sys.executable,
    [
        sys.executable,
        "/usr/local/bin/openai_api_stand_in.py",
        "--name",
        "container-engine-stand-in",
        "--address",
        options.host,
        "--port",
        str(options.port),
        "--model",
        options.served_model_name or options.model,
    ],
)
