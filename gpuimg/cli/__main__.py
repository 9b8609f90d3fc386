"""``python -m gpuimg.cli``: the ``gpuimg`` command."""

import sys

from . import main

sys.exit(main())
