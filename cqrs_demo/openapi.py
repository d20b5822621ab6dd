"""Pieces both services' OpenAPI 3 documents share: the error body and the health answer."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["service", "status", "namespace"],
    "properties": {
        "service": {"type": "string"},
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "namespace": {"type": "string"},
        "reason": {"type": "string"},
    },
}


def error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def json_response(description: str, schema: dict[str, Any], headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def health_path() -> dict[str, Any]:
    return {
        "get": {
            "summary": "Whether the service can reach its store",
            "operationId": "health",
            "responses": {
                "200": json_response("healthy", {"$ref": "#/components/schemas/Health"}),
                "503": json_response("the store is unreachable", {"$ref": "#/components/schemas/Health"}),
            },
        }
    }


def document(title: str, description: str, paths: dict, schemas: dict) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "paths": {**paths, "/health": health_path()},
        "components": {"schemas": {**schemas, "Error": ERROR_SCHEMA, "Health": HEALTH_SCHEMA}},
    }
