"""Schemathesis over Genway's own OpenAPI document: generated requests to every operation,
authenticated as an organization's owner, never get a 5xx (503 with `Retry-After`, for an
engine with no healthy backend, is the documented answer and allowed), and every answer is as
documented: its status code, content type, body schema and headers, an `Allow` header on 405,
schema-violating requests refused. (Accepting every schema-valid request is not checked yet:
see NOT_YET.)

A fixed budget and a derandomized generator keep the run bounded and repeatable; it runs on
both databases.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import openapi
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support import Tenant

EXAMPLES = int(os.environ.get("GENWAY_FUZZ_EXAMPLES", "600"))  # more for a deeper local run
# Streams stay open while their subject lives; they are exercised by their own tests.
STREAMING = ("/events/stream", "/jobs/{job_id}/events")
# Server errors are checked above (a 503 with Retry-After is allowed). Positive data acceptance
# ("every schema-valid request is accepted") still fails where validity is not expressible in
# the document: a job's `input` depends on its `kind`, cursors are opaque, webhook hosts must
# resolve, uploads must decode as images.
NOT_YET = [not_a_server_error, positive_data_acceptance]


def draw_cases(schema: Any, count: int) -> list[Any]:
    """`count` generated requests over every operation but the streams (deterministic)."""
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if not result.ok().path.endswith(STREAMING)
    ]
    drawn: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.one_of(*(operation.as_strategy() for operation in operations)))
    def collect(case: Any) -> None:
        drawn.append(case)

    collect()
    return drawn


def transport(case: Any, base_url: str, headers: dict[str, str]) -> dict[str, Any]:
    kwargs = dict(case.as_transport_kwargs(base_url=base_url, headers=headers))
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    kwargs.pop("allow_redirects", None)
    return kwargs


async def test_generated_requests_never_get_a_server_error(
    server: str, client: httpx.AsyncClient, tenant: Tenant
):
    document = (await client.get("/openapi.json")).json()
    cases = await asyncio.to_thread(draw_cases, openapi.from_dict(document), EXAMPLES)
    assert len(cases) >= EXAMPLES // 2
    failures: list[str] = []
    async with httpx.AsyncClient(timeout=10) as fuzzer:
        for case in cases:
            request = transport(case, server, tenant.headers)
            try:
                response = await fuzzer.request(**request)
            except httpx.ReadTimeout:
                failures.append(f"{case.method} {case.path}: no answer in 10 s")
                continue
            allowed = response.status_code == 503 and "retry-after" in response.headers
            if response.status_code >= 500 and not allowed:
                failures.append(
                    f"{case.method} {case.path} -> {response.status_code}: {response.text[:200]}"
                    f"\n    {case.as_curl_command(headers=tenant.headers)}"
                )
                continue
            try:
                case.validate_response(response, headers=tenant.headers, excluded_checks=NOT_YET)
            except FailureGroup as exc:
                failures.append(
                    f"{case.method} {case.path} -> {response.status_code}: "
                    f"{str(exc)[:600]}\n    {response.text[:200]}"
                )
    assert not failures, "\n".join(failures[:20])
