"""Local development server: ``python -m app`` (the container runs gunicorn instead)."""

from __future__ import annotations

import os

from app import create_app

if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "{{ cookiecutter.container_port }}")))
