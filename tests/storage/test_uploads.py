"""Uploads and artifacts: size and type checks, sanitized names, content addressing,
organization scoping, signed URLs (expiry and tampering), and the cleanup of old uploads."""

from __future__ import annotations

import io
import os
import random
import time
from datetime import timedelta

import httpx
import pytest
from PIL import Image
from sqlalchemy import update

from genway.config import Settings
from genway.db import Database, utcnow
from genway.storage.blobs import BlobStore
from genway.storage.cleanup import UploadCleaner
from genway.storage.models import Artifact
from genway.storage.signing import UrlSigner
from tests.support import Tenant

LIMIT = 40_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"upload_max_bytes": LIMIT, "comfyui_urls": []})


def image(fmt: str = "PNG", size: tuple[int, int] = (8, 8), noise: bool = False) -> bytes:
    picture = Image.new("RGB", size, (200, 100, 50))
    if noise:
        rng = random.Random(4)
        picture.putdata(
            [
                (rng.randrange(256), rng.randrange(256), rng.randrange(256))
                for _ in range(size[0] * size[1])
            ]
        )
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def uploads_url(tenant: Tenant) -> str:
    return f"/v1/organizations/{tenant.org_id}/uploads"


async def upload(
    client: httpx.AsyncClient, tenant: Tenant, name: str, data: bytes, content_type: str
) -> httpx.Response:
    files = {"file": (name, data, content_type)}
    return await client.post(uploads_url(tenant), files=files, headers=tenant.headers)


async def test_uploads_are_checked_sanitized_and_stored_once(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
):
    png = image()
    first = await upload(client, tenant, "../../etc/pa ss?wd.png", png, "image/png")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["name"] == "pa ss_wd.png" and body["kind"] == "upload"
    assert body["content_type"] == "image/png" and body["size"] == len(png)
    blob = settings.data_dir / "blobs" / body["sha256"][:2] / body["sha256"][2:]
    assert blob.read_bytes() == png
    again = await upload(client, tenant, "pa ss?wd.png", png, "image/png")
    assert again.json()["id"] == body["id"]  # same name, same content: the same upload
    theirs = await upload(client, other_tenant, "x.png", png, "application/octet-stream")
    assert theirs.status_code == 201 and theirs.json()["sha256"] == body["sha256"]
    assert len(list((settings.data_dir / "blobs").rglob("*"))) == 2  # one folder, one file

    named = await upload(client, tenant, "noext", image("JPEG"), "image/jpeg")
    assert named.json()["name"] == "noext.jpg" and named.json()["content_type"] == "image/jpeg"
    legacy = await client.post(
        "/api/v1/upload",
        files={"file": ("l.webp", image("WEBP"), "image/webp")},
        headers=tenant.headers,
    )
    assert legacy.status_code == 201 and legacy.json()["content_type"] == "image/webp"

    listed = (await client.get(uploads_url(tenant), headers=tenant.headers)).json()
    assert listed["total"] == 3 and {i["name"] for i in listed["items"]} == {
        "pa ss_wd.png",
        "noext.jpg",
        "l.webp",
    }
    one = await client.get(f"{uploads_url(tenant)}/{body['id']}", headers=tenant.headers)
    assert one.status_code == 200
    hidden = await client.get(
        f"{uploads_url(other_tenant)}/{body['id']}", headers=other_tenant.headers
    )
    assert hidden.status_code == 404


async def test_size_and_type_are_enforced(client: httpx.AsyncClient, tenant: Tenant):
    big = image(size=(200, 200), noise=True)
    assert len(big) > LIMIT
    too_big = await upload(client, tenant, "big.png", big, "image/png")
    assert too_big.status_code == 413 and too_big.json()["status_code"] == 413
    cases = [
        ("notes.txt", b"hello, not an image", "text/plain"),
        ("fake.png", b"hello, not an image", "image/png"),
        ("photo.png", image("JPEG"), "image/png"),  # declared PNG, really JPEG
        ("photo.jpg", image("PNG"), "application/octet-stream"),  # named JPEG, really PNG
        ("photo.txt", image("PNG"), "image/png"),
        ("anim.ico", image("ICO", (16, 16)), "image/x-icon"),  # an image, not one we take
    ]
    for name, data, content_type in cases:
        refused = await upload(client, tenant, name, data, content_type)
        assert refused.status_code == 415, (name, refused.text)
    not_multipart = await client.post(uploads_url(tenant), json={}, headers=tenant.headers)
    assert not_multipart.status_code == 415
    no_file = await client.post(
        uploads_url(tenant),
        data={"subfolder": "x"},
        files={"other": ("a", b"b")},
        headers=tenant.headers,
    )
    assert no_file.status_code == 422
    listed = (await client.get(uploads_url(tenant), headers=tenant.headers)).json()
    assert listed["total"] == 0


async def test_signed_urls_work_without_headers_until_they_expire(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    png = image()
    body = (await upload(client, tenant, "a.png", png, "image/png")).json()
    async with httpx.AsyncClient() as browser:  # no credentials, as an <img> tag
        fetched = await browser.get(body["signed_url"])
        assert fetched.status_code == 200 and fetched.content == png
        assert fetched.headers["content-type"] == "image/png"
        url = httpx.URL(body["signed_url"])
        expires, signature = url.params["expires"], url.params["signature"]
        tampered = [
            url.copy_set_param(
                "signature", signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
            ),
            url.copy_set_param("expires", str(int(expires) + 3600)),
            url.copy_with(path=url.path.replace(f"/{body['id']}/", f"/{body['id'] + 1}/")),
            url.copy_with(path=url.path.replace(f"/files/{tenant.org_id}/", "/files/999/")),
        ]
        for bad in tampered:
            assert (await browser.get(bad)).status_code == 403, bad
        signer = UrlSigner(settings.resolved_secret_key, settings.signed_url_ttl_s)
        old = signer.sign(tenant.org_id, body["id"], "a.png", now=time.time() - 7200)
        expired = await browser.get(str(url.copy_with(raw_path=old.encode())))
        assert expired.status_code == 403 and "expired" in expired.json()["detail"]
        fresh = signer.sign(tenant.org_id, body["id"], "a.png")
        assert (await browser.get(str(url.copy_with(raw_path=fresh.encode())))).status_code == 200
        missing = await browser.get(str(url.copy_with(raw_path=b"/files/1/2/x.png")))
        assert missing.status_code == 422


async def test_cleanup_removes_unreferenced_uploads_and_their_blobs(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, settings: Settings
):
    old = (await upload(client, tenant, "old.png", image(), "image/png")).json()
    shared = (await upload(client, tenant, "shared.gif", image("GIF"), "image/gif")).json()
    kept = (await upload(client, tenant, "again.gif", image("GIF"), "image/gif")).json()
    assert shared["sha256"] == kept["sha256"]
    long_ago = utcnow() - timedelta(days=3)
    async with db.sessions() as session:
        await session.execute(
            update(Artifact)
            .where(Artifact.id.in_([old["id"], shared["id"]]))
            .values(last_referenced_at=long_ago)
        )
        await session.commit()
    store = BlobStore(settings.data_dir / "blobs")
    for sha in (old["sha256"], shared["sha256"]):
        os.utime(store.path(sha), (time.time() - 3 * 86400,) * 2)
    report = await UploadCleaner(db, store, ttl_s=86400).run_once()
    assert report.uploads_deleted == 2 and report.blobs_deleted == 1
    assert not store.exists(old["sha256"]) and store.exists(kept["sha256"])
    names = [
        i["name"]
        for i in (await client.get(uploads_url(tenant), headers=tenant.headers)).json()["items"]
    ]
    assert names == ["again.gif"]
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(old["signed_url"])).status_code == 404
        assert (await browser.get(kept["signed_url"])).status_code == 200
