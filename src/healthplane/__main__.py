"""``python -m healthplane`` is the ``healthplane`` console script."""

import sys

from healthplane.cli import main

sys.exit(main())
