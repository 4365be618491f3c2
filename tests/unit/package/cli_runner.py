"""Runs the onprem-llm command line in-process for the package's unit tests."""

from __future__ import annotations

import contextlib
import io

from onprem_llm.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one command; argparse's usage errors and exits are caught
    and their text lands in stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(list(argv), out, err)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()
