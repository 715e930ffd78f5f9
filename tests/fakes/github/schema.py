"""Checks the fake's REST answers against GitHub's published OpenAPI description.

The description is api.github.com's from `@octokit/openapi` (OpenAPI 3.0.3). It is parsed once
per process; a validator is built lazily per (operation, status) with
`openapi_schema_validator.OAS30Validator`, which implements OpenAPI 3.0's schema dialect
(`nullable`, draft-4 style keywords) and checks formats such as `date-time`; `$ref`s resolve
against the whole description, so nothing is copied or converted. One liberty: a `nullable`
schema with an `enum` also admits null (OpenAPI 3.0.3 would want null listed in the enum;
GitHub's description does not list it, yet GitHub sends it, e.g. `conclusion: null`).

An answer is checked against the operation's response for that status; failing that its
`default` response; failing that, for 4xx/5xx, against `basic-error` (GitHub's generic error
body, which it sends for e.g. 401 and rate limits on operations whose description does not
list them). A success status the operation does not describe is itself a violation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from tests.fakes.github.npm_cache import openapi_description

_ENUM = OAS30Validator.VALIDATORS["enum"]


def _nullable_enum(
    validator: Validator, enums: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """`enum`, except that `nullable: true` admits null without listing it (GitHub's
    description relies on this, e.g. a check run's `conclusion` before it completes)."""
    if instance is None and schema.get("nullable") is True:
        return
    yield from _ENUM(validator, enums, instance, schema)


GitHubOAS30Validator = validators.extend(OAS30Validator, {"enum": _nullable_enum})


@dataclass(frozen=True)
class _Expected:
    """What an operation says about one status: a validator, or that there is no body."""

    validator: Validator | None
    source: str


class OpenApiDescription:
    """GitHub's REST description with lazily built response validators."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._expected: dict[tuple[str, str | None, int], _Expected | None] = {}
        self._lock = threading.Lock()

    def has_operation(self, method: str, template: str) -> bool:
        return method.lower() in self.document["paths"].get(template, {})

    def violations(self, method: str, template: str | None, status: int, body: Any) -> list[str]:
        """Why `body` (parsed JSON, or None for an empty body) is not a documented answer."""
        where = f"{method} {template or '(no operation)'} {status}"
        expected = self._expectation(method.lower(), template, status)
        if expected is None:
            return [f"{where}: status not described for this operation"]
        if expected.validator is None:
            return [] if body is None else [f"{where}: {expected.source} has no body, got one"]
        if body is None:
            return [f"{where}: expected a JSON body ({expected.source}), got none"]
        error = best_match(expected.validator.iter_errors(body))
        if error is None:
            return []
        path = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return [f"{where}: {expected.source}: at {path}: {error.message[:300]}"]

    def webhook_violations(self, event: str, action: str | None, payload: Any) -> list[str]:
        """Why `payload` is not a documented `event` (`action`) webhook body (`x-webhooks`)."""
        name = event.replace("_", "-") + (f"-{action.replace('_', '-')}" if action else "")
        key = ("webhook", name, 0)
        with self._lock:
            if key not in self._expected:
                hook = self.document.get("x-webhooks", {}).get(name)
                schema = (
                    hook["post"]["requestBody"]["content"]["application/json"]["schema"]
                    if hook
                    else None
                )
                self._expected[key] = self._validator(schema, name) if schema else None
            expected = self._expected[key]
        if expected is None or expected.validator is None:
            return [f"webhook {name}: not described in x-webhooks"]
        error = best_match(expected.validator.iter_errors(payload))
        if error is None:
            return []
        path = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return [f"webhook {name}: at {path}: {error.message[:300]}"]

    def _expectation(self, method: str, template: str | None, status: int) -> _Expected | None:
        key = (method, template, status)
        with self._lock:
            if key not in self._expected:
                self._expected[key] = self._build(method, template, status)
            return self._expected[key]

    def _build(self, method: str, template: str | None, status: int) -> _Expected | None:
        operation = self.document["paths"].get(template or "", {}).get(method)
        responses: dict[str, Any] = operation["responses"] if operation else {}
        response = responses.get(str(status)) or responses.get("default")
        if response is None:
            if status < 400:
                return None
            return self._validator({"$ref": "#/components/schemas/basic-error"}, "basic-error")
        source = f"{operation['operationId'] if operation else '?'} {status}"
        while "$ref" in response:
            response = self._resolve(response["$ref"])
        content = response.get("content", {})
        media = content.get("application/json") or next(iter(content.values()), None)
        if media is None or "schema" not in media:
            return _Expected(None, source)
        return self._validator(media["schema"], source)

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return dict(node)

    def _validator(self, schema: dict[str, Any], source: str) -> _Expected:
        # The schema is placed in a root that carries `components`, so `#/components/...`
        # references resolve without copying anything.
        root = {**schema, "components": self.document["components"]}
        validator = GitHubOAS30Validator(root, format_checker=oas30_format_checker)
        return _Expected(validator, source)


_description: OpenApiDescription | None = None
_description_lock = threading.Lock()


def github_openapi() -> OpenApiDescription:
    """The process-wide parsed description (downloaded and parsed on first use)."""
    global _description
    with _description_lock:
        if _description is None:
            document = orjson.loads(openapi_description().read_bytes())
            _description = OpenApiDescription(document)
        return _description
