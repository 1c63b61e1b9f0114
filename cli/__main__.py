"""`python -m cli`: the `reelforge` command line."""

import sys

from cli import main

sys.exit(main())
