"""`python -m skyclass ...` (what `torchrun -m skyclass train ...` runs on every rank)."""

import sys

from skyclass.cli import main

sys.exit(main())
