"""Entrypoint of the stand-in engine image: takes vLLM's server arguments, like the vLLM image.

Like vLLM it refuses to start without the model directory (mounted read-only from the model
store), then serves the OpenAI API stand-in on --host/--port under --served-model-name.
"""

import argparse
import os
import sys

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
