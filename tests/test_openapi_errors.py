"""The OpenAPI document tells clients the error answers they get: one error body for every
4xx/5xx, which is what a real error answer looks like (a 422 from a rule the schema cannot say,
whose `detail` is a sentence, included)."""

from __future__ import annotations

import httpx

from tests.support import Tenant

COMMON = {"400", "401", "403", "404", "409", "413", "415", "422", "429", "503"}


async def test_every_operation_documents_the_error_body(client: httpx.AsyncClient):
    document = (await client.get("/openapi.json")).json()
    body = document["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"detail", "message", "status_code"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert COMMON <= responses.keys(), (method, path, sorted(responses))
            schema = responses["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


async def test_a_sentence_422_matches_the_documented_body(
    client: httpx.AsyncClient, tenant: Tenant
):
    refused = await client.post(
        f"/v1/organizations/{tenant.org_id}/jobs",
        json={"kind": "no.such.kind", "input": {}},
        headers=tenant.headers,
    )
    assert refused.status_code == 422
    answer = refused.json()
    assert isinstance(answer["detail"], str) and answer["message"] == answer["detail"]
    assert answer["status_code"] == 422


async def test_comfyui_empty_answers_are_documented_as_empty(client: httpx.AsyncClient):
    document = (await client.get("/openapi.json")).json()
    for path in ("/interrupt", "/queue"):
        assert document["paths"][path]["post"]["responses"]["200"]["content"] == {}
