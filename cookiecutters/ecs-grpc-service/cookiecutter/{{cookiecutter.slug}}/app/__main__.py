"""``python -m app``: run the server (the container's entrypoint)."""

from __future__ import annotations

import sys

from app import logs
from app.config import load_settings
from app.server import serve


def main() -> int:
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
