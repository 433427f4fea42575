from __future__ import annotations

import pytest

from app.handler import PermanentError, handle


def test_a_json_object_is_processed():
    handle({"kind": "greeting", "text": "hello"}, message_id="m-1")


def test_anything_else_is_permanently_bad():
    with pytest.raises(PermanentError):
        handle("not json", message_id="m-2")
