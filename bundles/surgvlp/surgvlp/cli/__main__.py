"""``python -m surgvlp.cli``: the ``surgvlp`` command where the console script is not on PATH."""

import sys

from surgvlp.cli import main

sys.exit(main())
