"""The OpenAPI document, made exact in one place (`install(app)`, called once by service/app.py).

FastAPI documents each operation's success response and a 422 with a validation model of its own.
The service answers every error with the error model of service/errors.py instead
(`{"error": {"code", "message", ...}}`), and can answer more statuses than FastAPI knows about.
The document built here says, for every operation:

- 414, 431 and 422 always: the request limits (service/limits.py) run before routing and refuse
  a long URL, large headers, and control characters in the path or query;
- 401, 403 and 503 when it is authenticated (every operation not in `SECURITY`: an API key, whose
  scope may not cover the operation, checked in a database that may be unavailable), with
  `security: [{"apiKey": []}]`, and 409 when it also writes (a conflicting concurrent write);
  public operations say `security: []`, and the LiveKit webhook names LiveKit's own signature;
- 400 (a body that is not UTF-8) and 413 (the body-size limit) when it takes a body;
- the statuses in `STATUSES` (404 for a path id that may not exist, 409 for conflicts, and the
  422s that no parameter explains), each with the error model;
- for every string a request carries (path, query, body), the one text rule of service/text.py
  as a `pattern`: no control characters (a body model's `_multiline` fields may hold tab and
  line breaks); lone surrogates, also refused, cannot be said in a pattern (see `TEXT`).

Constraints: an operation whose handler can return a status not derived above must list it in
`STATUSES` (schemathesis, in tests/integration/service/test_contract.py, fails the suite
otherwise), and every key of `STATUSES` and `SECURITY` must name a real operation (the same test
checks it). The document is built once, on first request, and cached. Every path answers OPTIONS
with 204 and `Allow`, and a method it does not serve with 405 and `Allow` (service/methods.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from rapport.service import api
from rapport.service.methods import AllowedMethods

ERROR_REF = "#/components/schemas/Error"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "rk_...",
        "description": "A product backend's API key (`rapport keys create NAME`), sent as "
        "`Authorization: Bearer rk_...`. A key whose scope does not cover an operation gets 403.",
    },
    "dashboardToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A short-lived token scoped to one session, from "
        "`POST /v1/sessions/{session_id}/tokens`, for the WebSocket `/v1/events?session=ID` "
        "(as `?token=` or `Authorization: Bearer`; an API key in the header works too). "
        "OpenAPI cannot describe a WebSocket, so no operation below lists this scheme.",
    },
    "livekitWebhook": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "LiveKit's webhook signature: a JWT signed with the LiveKit API secret "
        "that carries the body's SHA-256 (not an API key).",
    },
}

SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "GET /healthz": [],
    "GET /readyz": [],
    "GET /metrics": [],
    "GET /.well-known/rapport-keys.json": [],
    "GET /v1/purposes": [],
    "POST /v1/livekit/webhook": [{"livekitWebhook": []}],
}
"""Operations not authenticated by an API key; every other operation is."""

DERIVED: dict[int, str] = {
    400: "The body is not UTF-8 text (`bad_request`); text that is not JSON is a 422.",
    401: "No valid API key (`Authorization: Bearer rk_...`).",
    403: "The API key's scope does not cover this operation (`forbidden`).",
    409: "A concurrent write conflicts with this one (`conflict`); retry.",
    413: "The request body is over `service.max_body_bytes` (`too_large`).",
    414: "The URL is too long.",
    422: "The request does not validate (`invalid_request`, with `fields` for the body and "
    "parameters), or its path or query has control characters.",
    431: "The headers are over `service.max_header_bytes` (`too_large`).",
    503: "The database is unavailable; retry.",
}
"""Statuses derived from the shape of an operation (see the module's docstring)."""

STATUSES: dict[str, dict[int, str]] = {
    "GET /readyz": {503: "Not ready (`not_ready`); `checks` says which check failed."},
    "GET /metrics": {404: "Metrics are turned off (`service.metrics: false`)."},
    "DELETE /v1/keys/{key_id}": {404: "No API key with this id in the caller's project."},
    "POST /v1/consents": {
        404: "No session with this `session_id`.",
        409: "The session has ended.",
        422: "Invalid, or refused: a purpose other than the session's, already expired, or a "
        "purpose the law forbids there (`purpose_refused`, with `legal_basis` and `alternative`).",
    },
    "GET /v1/consents/{consent_id}": {404: "No consent with this id."},
    "POST /v1/consents/{consent_id}/revoke": {404: "No consent with this id."},
    "POST /v1/sessions": {
        422: "Invalid, or refused: not exactly one of `recording` and `room`, media outside "
        "`service.media_roots` or unreadable, per-participant reporting the purpose does not "
        "allow, or a purpose the law forbids there (`purpose_refused`).",
    },
    "GET /v1/sessions": {404: "`after` names no session of the caller's project."},
    "GET /v1/sessions/{session_id}": {404: "No session with this id."},
    "GET /v1/sessions/{session_id}/report": {
        404: "No session with this id.",
        409: "The session has not ended yet (`session_not_ended`).",
    },
    "DELETE /v1/sessions/{session_id}": {404: "No session with this id."},
    "POST /v1/sessions/{session_id}/start": {
        404: "No session with this id.",
        409: "A room session (it starts with its room), or one already started.",
        422: "The recording or its transcript cannot be read any more.",
    },
    "POST /v1/sessions/{session_id}/tokens": {404: "No session with this id."},
    "POST /v1/webhooks": {
        422: "Invalid, or refused: an unknown event type, or a URL that does not resolve or "
        "reaches a private address (SSRF; `webhooks.allowed_networks`).",
    },
    "GET /v1/webhooks/{endpoint_id}": {404: "No webhook endpoint with this id."},
    "DELETE /v1/webhooks/{endpoint_id}": {404: "No webhook endpoint with this id."},
    "POST /v1/webhooks/{endpoint_id}/rotate-secret": {404: "No webhook endpoint with this id."},
    "POST /v1/webhooks/{endpoint_id}/enable": {
        404: "No webhook endpoint with this id.",
        422: "The endpoint's URL is refused now (it resolves to a private address).",
    },
    "GET /v1/webhooks/{endpoint_id}/dead-letters": {404: "No webhook endpoint with this id."},
    "POST /v1/webhooks/{endpoint_id}/dead-letters/replay": {
        404: "No webhook endpoint with this id.",
        409: "The endpoint is disabled: enable it first.",
    },
    "POST /v1/livekit/webhook": {
        401: "LiveKit's signature is missing or does not verify.",
        404: "No LiveKit server is configured (`livekit_not_configured`).",
        409: "The event is stale or was already acted on.",
        413: DERIVED[413],
        422: "The event has no id.",
        503: DERIVED[503],
    },
}
"""Per operation ("METHOD /path" as documented), the error statuses its handler itself returns."""


class FieldError(BaseModel):
    field: str = Field(description="Where, dotted: `body.modalities.0`, `query.limit`.")
    message: str


class ErrorDetail(BaseModel):
    """One error; some codes add fields (a refused purpose: `legal_basis`, `alternative`)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable and machine-readable: `not_found`, `invalid_request`...")
    message: str = Field(description="One line for people.")
    fields: list[FieldError] | None = Field(
        None, description="Every field that failed validation (`invalid_request` only)."
    )
    legal_basis: str | None = Field(None, description="`purpose_refused` only.")
    alternative: str | None = Field(None, description="`purpose_refused` only.")


class Error(BaseModel):
    """Every 4xx and 5xx answer of the HTTP API."""

    error: ErrorDetail


TEXT = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
"""service/text.py's rule as a pattern: no control character (Cc). Lone surrogates (Cs), refused
too, have no pattern (regex engines of JSON Schema validators reject the range); they are not
Unicode scalar values, so UTF-8 cannot carry them, and a JSON body with one is invalid."""
MULTILINE_TEXT = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
"""The same, allowing tab, line feed and carriage return (a body model's `_multiline` fields)."""


def _constrain_text(schema: Any, pattern: str) -> None:
    """Add `pattern` to every free string schema in `schema` (not enums, consts or formats)."""
    if isinstance(schema, list):
        for item in schema:
            _constrain_text(item, pattern)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not {"enum", "const", "format"} & schema.keys():
        if "pattern" in schema:
            schema.setdefault("allOf", []).append({"pattern": pattern})
        else:
            schema["pattern"] = pattern
    for key, value in schema.items():
        if key != "properties":
            _constrain_text(value, pattern)
    for value in schema.get("properties", {}).values():
        _constrain_text(value, pattern)


def _body_models() -> dict[str, frozenset[str]]:
    """Request body models (service/api.py `_In`) by name, with their multi-line fields."""
    out: dict[str, frozenset[str]] = {}
    todo: list[type[api._In]] = list(api._In.__subclasses__())
    while todo:
        cls = todo.pop()
        out[cls.__name__] = cls._multiline
        todo.extend(cls.__subclasses__())
    return out


def _text_rule(doc: dict[str, Any]) -> None:
    schemas = doc.get("components", {}).get("schemas", {})
    for name, multiline in _body_models().items():
        model = schemas.get(name)
        if model is None:
            continue
        for field, schema in model.get("properties", {}).items():
            _constrain_text(schema, MULTILINE_TEXT if field in multiline else TEXT)
    for item in doc.get("paths", {}).values():
        for op in item.values():
            for parameter in op.get("parameters", []):
                if parameter.get("in") in ("path", "query"):
                    _constrain_text(parameter.get("schema"), TEXT)


def _error_response(description: str, status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if status == 401:
        out["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
        }
    return out


def operation_keys(doc: dict[str, Any]) -> list[str]:
    """Every operation of a document as "METHOD /path"."""
    return [f"{m.upper()} {path}" for path, item in doc.get("paths", {}).items() for m in item]


def _statuses(key: str, op: dict[str, Any]) -> dict[int, str]:
    derived = [414, 422, 431]
    if key not in SECURITY:
        derived += [401, 403, 503] + ([] if key.startswith("GET ") else [409])
    if "requestBody" in op:
        derived += [400, 413]
    out = {status: DERIVED[status] for status in derived}
    out.update(STATUSES.get(key, {}))
    return out


def build(app: FastAPI) -> dict[str, Any]:
    """The document: FastAPI's, with the error model, every status and the security."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["Error"] = error
    components["securitySchemes"] = SECURITY_SCHEMES
    _text_rule(doc)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            key = f"{method.upper()} {path}"
            op["security"] = SECURITY.get(key, [{"apiKey": []}])
            responses = op.setdefault("responses", {})
            for status, description in sorted(_statuses(key, op).items()):
                responses[str(status)] = _error_response(description, status)
    return doc


def install(app: FastAPI) -> None:
    """Serve the exact document at /openapi.json (and /docs), and answer OPTIONS and 405 with
    the full `Allow` of each path (service/methods.py). Call once, after the routes are added."""
    app.add_middleware(AllowedMethods, routes=app.router.routes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
