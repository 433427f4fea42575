from __future__ import annotations

import pytest

from app import HEALTH_CHECK_PATH, create_app


@pytest.fixture
def client():
    return create_app({"TESTING": True, "VERSION": "test"}).test_client()


def test_health_answers_ok(client):
    response = client.get(HEALTH_CHECK_PATH)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_index_names_the_service(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json() == {"service": "{{ cookiecutter.slug }}", "version": "test"}


def test_unknown_path_is_404(client):
    assert client.get("/no-such-page").status_code == 404
