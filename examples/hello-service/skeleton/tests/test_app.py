from src import app


def test_port() -> None:
    assert app.PORT == ${{ values.port }}
