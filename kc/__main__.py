"""``python -m kc``: the same as the ``kc`` command."""

import sys

from kc.cli import main

sys.exit(main())
