"""The OpenAPI document, said as the API behaves.

FastAPI writes an optional parameter (`int | None = None`) as `anyOf: [integer, null]`, which
tells clients they may send `null`; a query, header or path parameter cannot be null, only
absent, and the literal text `null` is refused. The document drops that `null` alternative from
every parameter, so it promises only what is accepted. Rules that depend on this deployment are
written in too: the password length it requires, and the job kinds its workers run.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

NULL = {"type": "null"}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if not isinstance(options, list) or NULL not in options:
        return schema
    rest = [option for option in options if option != NULL]
    cleaned = {key: value for key, value in schema.items() if key != "anyOf"}
    if len(rest) == 1:
        return {**rest[0], **cleaned}
    return {**cleaned, "anyOf": rest}


def _tidy(document: dict[str, Any]) -> dict[str, Any]:
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = _without_null(parameter["schema"])
    return document


def _deployment_rules(document: dict[str, Any], password_min_length: int) -> None:
    from genway.worker.registry import known_kinds

    schemas = document.get("components", {}).get("schemas", {})
    for name in ("RegisterRequest", "PasswordChange"):
        password = schemas.get(name, {}).get("properties", {}).get("password")
        if password is not None:
            password["minLength"] = password_min_length
    kinds = known_kinds()
    for name in ("JobCreate", "LegacyJobCreate"):
        kind = schemas.get(name, {}).get("properties", {}).get("kind")
        if kind is not None and kinds:
            kind["enum"] = kinds


def install_openapi(app: FastAPI, *, password_min_length: int) -> None:
    """Serve the tidied document at /openapi.json (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = _tidy(build())
            _deployment_rules(document, password_min_length)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
