"""What both HTTP services share: client errors as values, JSON in and out, health, the document.

`install` maps every `errors.ApiError`, and Flask's own HTTP errors, to the same JSON body:
`{"error": code, "message": text, ...}`.
Nothing a client sends can produce a 500 or a stack trace.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Annotated, Any, Literal

import simplejson
from flask import Flask, Request, Response, jsonify, request
from flask.json.provider import JSONProvider
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from cqrs_demo import openapi
from cqrs_demo.errors import (
    ApiError,
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

log = logging.getLogger(__name__)

# How many requests each HTTP service serves at once (its server's threads). The command service
# keeps as many database connections: under load a request neither waits for one nor opens its
# own, which would cost PostgreSQL a new backend process per request.
REQUEST_THREADS = 16

MAX_BODY_BYTES = 64 * 1024


class JsonProvider(JSONProvider):
    """JSON with exact decimals both ways: fractions parse to `Decimal`, decimals print as numbers."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("use_decimal", True)
        kwargs.setdefault("default", _default)
        return simplejson.dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return simplejson.loads(s, use_decimal=True, **kwargs)


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# What `json_body` and `validated` refuse: every operation that takes a JSON body can answer these.
JSON_BODY_ERRORS = (MalformedJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed)


def json_body(req: Request | None = None) -> dict[str, Any]:
    """The request's JSON object, or the precise client error that explains why there is none."""
    req = req or request
    if not req.is_json:
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {req.mimetype or 'none'!r}"
        )
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    raw = req.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    try:
        data = simplejson.loads(raw.decode("utf-8"), use_decimal=True)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationFailed("request body must be a JSON object", fields={"body": "must be an object"})
    return data


def validated(model, data: dict[str, Any]):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc) from None


Id = Annotated[int, Field(ge=1, le=2**63 - 1, description="an id, as the write side numbers them")]


class IdConverter(BaseConverter):
    """A numeric id in a path. Longer than any id can be (19 digits) matches no route: a 404."""

    regex = r"\d{1,19}"
    json_schema = TypeAdapter(Id).json_schema()

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


def error_response(exc: ApiError):
    """The one JSON answer to a client mistake: its body, status and headers."""
    response = jsonify(exc.body())
    response.status_code = exc.status
    response.headers.update(exc.headers())
    return response


def install(app: Flask) -> None:
    """Give an app the shared JSON handling, error mapping, id converter and size limit."""
    app.url_map.converters["id"] = IdConverter
    app.json = JsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 413:  # a body too long to read at all: the same answer as json_body's
            return error_response(PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes"))
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        response = jsonify({"error": code, "message": message})
        response.status_code = exc.code or 500
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify({"error": "internal_error", "message": "internal server error"}), 500


class Health(BaseModel):
    """Whether the service can reach its store."""

    service: str
    namespace: str
    status: Literal["ok", "unavailable"]
    reason: str | None = Field(None, description="why not, when unavailable")


def add_health(app: Flask, service: str, settings, probe) -> None:
    """`GET /health`: 200 when the service can reach its store, 503 with the reason when not."""

    @openapi.operation(
        summary="Whether the service can reach its store",
        replies=[openapi.Reply(200, "healthy", Health), openapi.Reply(503, "the store is unreachable", Health)],
    )
    def health():
        body = {"service": service, "namespace": settings.namespace}
        try:
            probe()
        except Exception as exc:  # any failure to reach the store is "unhealthy", by design
            return jsonify({**body, "status": "unavailable", "reason": str(exc)[:200]}), 503
        return jsonify({**body, "status": "ok"})

    app.add_url_rule("/health", "health", health)


def add_openapi(app: Flask, title: str, description: str) -> None:
    """`GET /openapi.json`: the document generated from the app's declared routes.

    Made once, when first asked for: most apps (a test's, a notebook's) never serve it.
    """

    @cache
    def text() -> str:
        return app.json.dumps(openapi.document(app, title, description))

    app.add_url_rule("/openapi.json", "openapi", lambda: Response(text(), mimetype="application/json"))
