"""The redactor masks secrets as they are and as they look once encoded."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from scaffolder.tasks.runner import Redactor

SECRET = "ghp_S3cr3t/Tok+en=&x"


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote(SECRET),
        urllib.parse.quote_plus(SECRET),
    ],
)
def test_each_encoded_form_is_masked(form: str) -> None:
    redact = Redactor({"token": SECRET})
    assert redact(f"before {form} after") == "before *** after"


@pytest.mark.parametrize("prefix", ["", "x", "x-access-token:", "ab", "abcd", "user:"])
@pytest.mark.parametrize("suffix", ["", "!", "@host", "tail-bytes"])
def test_the_secret_inside_a_longer_base64_string_is_masked(prefix: str, suffix: str) -> None:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        blob = encode(f"{prefix}{SECRET}{suffix}".encode()).decode()
        masked = Redactor({"token": SECRET})(f"Authorization: Basic {blob}")
        assert "***" in masked, (prefix, suffix, blob)
        # What is left of the blob cannot be decoded back into the secret.
        assert SECRET not in masked


def test_text_without_secrets_and_one_character_secrets_are_left_alone() -> None:
    redact = Redactor({"a": "x", "b": SECRET})
    text = "x marks the spot; base64 aGVsbG8gd29ybGQ= and a%20b stay"
    assert redact(text) == text
    assert Redactor({})(text) == text


def test_every_secret_is_masked() -> None:
    redact = Redactor({"one": "first-secret", "two": "second secret"})
    assert redact("first-secret, second+secret, second%20secret") == "***, ***, ***"
