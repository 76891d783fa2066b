"""`python -m edgeai`: the same as the `edgeai` command."""

import sys

from edgeai.cli import main

sys.exit(main())
