"""What both services share: client errors as JSON, with their headers, and the size limit."""

from __future__ import annotations

import pytest
from flask import Flask, request

from cqrs_demo import web
from cqrs_demo.errors import ReadModelBehind


@pytest.fixture
def client():
    app = Flask(__name__)
    web.install(app)

    @app.get("/behind")
    def behind():
        raise ReadModelBehind("not yet", id=1, read_model_version=2, min_version=3)

    @app.post("/raw")
    def raw():
        return {"bytes": len(request.get_data())}

    return app.test_client()


def test_read_model_behind_is_503_with_retry_after(client):
    response = client.get("/behind")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json() == {
        "error": "read_model_behind", "message": "not yet", "id": 1, "read_model_version": 2, "min_version": 3
    }
    ReadModelBehind.body_model().model_validate(response.get_json())


def test_a_body_too_large_to_read_is_the_same_413_as_json_bodys(client):
    response = client.post("/raw", data=b"x" * (web.MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_an_unknown_route_and_method_are_json(client):
    assert client.get("/nothing").get_json()["error"] == "not_found"
    response = client.get("/raw")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
