"""`python -m onprem_llm` runs the CLI."""

import sys

from onprem_llm.cli import main

sys.exit(main())
