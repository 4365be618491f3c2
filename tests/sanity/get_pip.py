"""What ansible-test runs to put pip into the virtual environments of its sanity tests, in place
of get-pip.py from ci-files.testing.ansible.com, which sites with package mirrors only cannot
reach: the same pip release, from its wheel downloaded from the package index beside this file.

Called as get-pip.py is, with pip's install options and the packages (pip==VERSION).
"""

import glob
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
wheels = glob.glob(os.path.join(here, "pip-*-py3-none-any.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one pip wheel beside {__file__}, found {len(wheels)}")
sys.path.insert(0, wheels[0])
from pip._internal.cli.main import main  # noqa: E402

# get-pip.py's own options, which pip install does not know.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *args]))
