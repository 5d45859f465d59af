"""The OpenAPI 3.1 document of the API (``GET /v1/openapi.json``), drawn from the route table that
serves the routes, so that it lists every route and cannot drift from them."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

import ha
from ha.api_base import ROUTES, Route
from ha.scenario import SUPPOSABLE

DESCRIPTIONS = {
    200: "done",
    202: "accepted: the daemon's loop took the command",
    400: "bad request (not JSON, not an object, a malformed parameter)",
    401: "no bearer token, or an unknown one",
    403: "the token's role may not do this (viewer tokens only read)",
    404: "no such scenario, group, action or file",
    409: "the current state does not allow it; the reason says why",
    422: "a well-formed request with invalid values",
    503: "the daemon's loop did not take the command in time",
}
ERROR = {"$ref": "#/components/schemas/Error"}
AS_IF = {
    "type": "object",
    "additionalProperties": {"enum": list(SUPPOSABLE)},
    "description": "dry run only: judge these scenarios as if in these states",
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {"error": {"type": "string", "description": "the reason, for a person"}},
        "required": ["error"],
    },
    "Command": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "dry_run": {"type": "boolean", "description": "answer the steps, take none"},
            "force": {"type": "boolean", "description": "even if the target side fails checks"},
            "force_promotion": {
                "type": "boolean",
                "description": "databases: promote even above the lag bound",
            },
            "active": {"enum": ["production", "replica"], "description": "recover: side to keep"},
            "as_if": AS_IF,
        },
    },
    "GroupCommand": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "dry_run": {"type": "boolean", "description": "answer the waves, take none"},
            "active": {"enum": ["production", "replica"], "description": "recover: side to keep"},
            "as_if": AS_IF,
        },
    },
}


def _parameter(name: str, where: str, text: str, enum: tuple[str, ...]) -> Any:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = list(enum)
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": text,
        "schema": schema,
    }


def _operation(route: Route) -> dict[str, Any]:
    declared = {p.name: p for p in route.params}
    params = []
    for name in re.findall(r"{(\w+)}", route.path):
        p = declared.pop(name, None)
        text, enum = (p.description, p.enum) if p else (name, ())
        params.append(_parameter(name, "path", text, enum))
    params += [_parameter(p.name, p.where, p.description, p.enum) for p in declared.values()]
    answers: dict[str, Any] = {}
    for status in route.answers:
        shown: dict[str, Any] = {"description": DESCRIPTIONS.get(status, "")}
        if status < 300:
            shown["content"] = {kind: {} for kind in route.content.split(" | ")}
        else:
            shown["content"] = {"application/json": {"schema": ERROR}}
        answers[str(status)] = shown
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "parameters": params,
        "responses": answers,
        "security": [{"bearer": []}] if route.role else [],
    }
    if route.role:
        operation["x-role"] = route.role
    if route.body:
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{route.body}"}}
            },
        }
    return operation


def document(routes: tuple[Route, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ha-orchestrator API",
            "version": ha.__version__,
            "description": "Bearer tokens: viewer reads, operator also pushes the buttons.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[ROUTES]))
