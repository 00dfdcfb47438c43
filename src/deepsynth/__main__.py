"""``python -m deepsynth``: the same as the ``deepsynth`` command."""

import sys

from deepsynth.cli.main import main

sys.exit(main())
