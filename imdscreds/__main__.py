"""``python -m imdscreds``."""

from __future__ import annotations

import sys

from imdscreds.cli import main

if __name__ == "__main__":
    sys.exit(main())
