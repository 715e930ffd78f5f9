"""ComfyUI's `/ws` stops relaying the organization's prompts once its key is revoked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import websockets

from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import wait_healthy
from tests.fakes.comfyui import FakeComfyUI
from tests.realtime.test_stream_access import close_code, create_key
from tests.support import Tenant, bearer


async def test_a_revoked_key_hears_no_prompt_submitted_after_the_revocation(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
) -> None:
    await wait_healthy(api, 2)
    key = await create_key(api, tenant)
    url = str(api.base_url).replace("http://", "ws://") + "/ws?clientId=watcher"
    async with websockets.connect(url, additional_headers=bearer(key["api_key"])) as socket:
        assert json.loads(await socket.recv())["type"] == "status"
        revoked = await api.delete(
            f"/v1/organizations/{tenant.org_id}/api-keys/{key['id']}", headers=tenant.headers
        )
        assert revoked.status_code == 200, revoked.text
        # No client id: ComfyUI (and Genway) would tell every socket of the organization.
        queued = await api.post(
            "/prompt", json={"prompt": invert_workflow("after")}, headers=tenant.headers
        )
        assert queued.status_code == 200, queued.text
        received: list[dict[str, Any]] = []
        assert await close_code(socket, received) == 4401
    assert received == []
