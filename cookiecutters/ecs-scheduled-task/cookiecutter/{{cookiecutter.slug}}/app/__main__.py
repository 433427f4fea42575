"""``python -m app``: the container's entrypoint."""

from __future__ import annotations

import sys

from app.job import main

if __name__ == "__main__":
    sys.exit(main())
