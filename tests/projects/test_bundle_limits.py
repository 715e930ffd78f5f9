"""A git bundle is parsed by Genway itself: what it unpacks to is bounded (a small upload of
compressed zeros must not become gigabytes in memory) and sizes it declares are checked."""

from __future__ import annotations

import hashlib
import struct
import zlib

import httpx
import pytest

from genway.config import Settings
from tests.agent_support import create_project, org_url
from tests.support import Tenant

BLOB = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"project_max_bytes": 1_000_000})


def object_header(kind: int, size: int) -> bytes:
    first = (kind << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(first | 0x80)
        first, size = size & 0x7F, size >> 7
    out.append(first)
    return bytes(out)


def bundle_of(declared_size: int, compressed: bytes) -> bytes:
    pack = b"PACK" + struct.pack(">II", 2, 1) + object_header(BLOB, declared_size) + compressed
    pack += hashlib.sha1(pack).digest()
    header = b"# v2 git bundle\n" + b"0" * 40 + b" refs/heads/main\n\n"
    return header + pack


def zeros(count: int) -> bytes:
    packer, chunk = zlib.compressobj(9), b"\0" * (1 << 20)
    body = b"".join(packer.compress(chunk) for _ in range(count // len(chunk)))
    return body + packer.flush()


async def import_bundle(client: httpx.AsyncClient, tenant: Tenant, data: bytes) -> httpx.Response:
    project = await create_project(client, tenant, name="bomb")
    url = org_url(tenant, f"/projects/{project['id']}/import")
    return await client.post(url, files={"bundle": ("r.bundle", data)}, headers=tenant.headers)


async def test_a_bundle_that_unpacks_to_too_much_is_refused(
    client: httpx.AsyncClient, tenant: Tenant
):
    size = 100 * 1024 * 1024  # past the 64 MiB floor; zeros compress 1000 to 1: a 100 KB upload
    refused = await import_bundle(client, tenant, bundle_of(size, zeros(size)))
    assert refused.status_code == 413 and "unpacks to more than" in refused.json()["detail"]


async def test_an_object_larger_than_it_says_is_refused(client: httpx.AsyncClient, tenant: Tenant):
    lying = await import_bundle(client, tenant, bundle_of(10, zlib.compress(b"x" * 100_000)))
    assert lying.status_code == 422 and "wrong size" in lying.json()["detail"]
