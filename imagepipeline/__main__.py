"""``python -m imagepipeline``."""

import sys

from imagepipeline.cli import main

sys.exit(main())
