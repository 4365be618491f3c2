"""Entrypoint of the stand-in engine image: takes an engine's server arguments, like its image.

Three personalities, chosen as the real images are invoked:
- vLLM 0.32.0 (the default entrypoint, as vllm/vllm-openai): the argument list recorded from
  vLLM 0.32.0;
- trtllm-serve 0.18.2 (`IMAGE trtllm-serve serve MODEL ...`, the command the engine role runs in
  TensorRT-LLM's image): its option names, model positional;
- TGI 3.3.7 (the `text-generation-launcher` entrypoint of the image's -tgi tag, as TGI's image):
  its launcher's option names.
Each prints its argument list on --help, refuses an option the list lacks with the engine's
own kind of error and a non-zero exit, and refuses to start without the model directory
(mounted read-only from the model store); then it serves the OpenAI API stand-in on the
engine's host and port options under the served name (TGI: the model path).
"""

import argparse
import os
import re
import sys

HELP_DIR = "/usr/local/share/stand-in-engine"
OPTION = re.compile(r"(?<![\w/.=-])(--?[A-Za-z][A-Za-z0-9_-]*)")

arguments = sys.argv[1:]
if os.path.basename(sys.argv[0]) == "text-generation-launcher":
    engine, help_file = "tgi", "tgi-launcher-options.txt"
elif arguments[:2] == ["trtllm-serve", "serve"]:
    engine, help_file, arguments = "trtllm", "trtllm-serve-options.txt", arguments[2:]
else:
    engine, help_file = "vllm", "vllm-help.txt"

with open(os.path.join(HELP_DIR, help_file), encoding="utf-8") as handle:
    help_text = handle.read()
if any(argument == "--help" or argument.startswith("--help=") for argument in arguments):
    sys.stdout.write(help_text)
    sys.exit(0)

known = set(OPTION.findall(help_text))
unknown = []
for argument in arguments:
    if not argument.startswith("-") or re.match(r"^-\d", argument):
        continue
    option = argument.split("=", 1)[0]
    short_with_value = not option.startswith("--") and option[:2] in known
    if option not in known and option.split(".", 1)[0] not in known and not short_with_value:
        unknown.append(argument)
if unknown:
    if engine == "vllm":  # argparse
        sys.stderr.write(
            "usage: api_server.py [-h] ...\n"
            f"api_server.py: error: unrecognized arguments: {' '.join(unknown)}\n"
        )
        sys.exit(2)
    if engine == "trtllm":  # click
        sys.stderr.write(f"Error: No such option: {unknown[0].split('=', 1)[0]}\n")
        sys.exit(2)
    # clap
    sys.stderr.write(f"error: unexpected argument '{unknown[0].split('=', 1)[0]}' found\n")
    sys.exit(2)

parser = argparse.ArgumentParser()
if engine == "vllm":
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", default="")
    parser.add_argument("--host", default="0.0.0.0")
    # vLLM's own TLS: the stand-in serves HTTPS with the same files.
    parser.add_argument("--ssl-keyfile", default="")
    parser.add_argument("--ssl-certfile", default="")
    parser.add_argument("--ssl-ciphers", default="")
    parser.add_argument("--shutdown-timeout", default="0")
elif engine == "trtllm":
    parser.add_argument("model")
    parser.add_argument("--host", default="localhost")
else:
    parser.add_argument("--model-id", dest="model", required=True)
    parser.add_argument("--hostname", dest="host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=8000)
options, _unused = parser.parse_known_args(arguments)
if not os.path.isfile(os.path.join(options.model, "config.json")):
    sys.exit(f"stand-in engine: no model at {options.model}")
tls = []
if getattr(options, "ssl_keyfile", "") and getattr(options, "ssl_certfile", ""):
    for path in (options.ssl_keyfile, options.ssl_certfile):
        if not os.path.isfile(path):  # vLLM (uvicorn) fails to start the same way
            sys.exit(f"stand-in engine: [Errno 2] No such file or directory: {path!r}")
    tls = ["--tls-cert", options.ssl_certfile, "--tls-key", options.ssl_keyfile]
    if options.ssl_ciphers:
        tls += ["--tls-ciphers", options.ssl_ciphers]
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
        getattr(options, "served_model_name", "") or options.model,
        "--shutdown-timeout",
        getattr(options, "shutdown_timeout", "0"),
        *tls,
    ],
)
