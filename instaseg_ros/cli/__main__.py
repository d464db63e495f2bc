"""``python -m instaseg_ros.cli``: the same as the ``instaseg`` console script."""

import sys

from instaseg_ros.cli import main

sys.exit(main())
