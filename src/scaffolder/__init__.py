"""scaffolder: a drop-in, Backstage-compatible scaffolder backend for Amazon ECS services."""

from __future__ import annotations

__version__ = "0.1.0"
