"""``python -m gpu_histeq.cli``: the ``gpu-histeq`` command."""

import sys

from . import main

sys.exit(main())
