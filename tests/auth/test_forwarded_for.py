"""`genway serve` takes the client's address from the connection: only proxies listed in
`GENWAY_TRUSTED_PROXIES` may set it with `X-Forwarded-For` (uvicorn's own handling, which
trusts any local peer, is off)."""

from __future__ import annotations

from pathlib import Path

from tests.jobs.processes import Processes
from tests.support import PASSWORD


async def test_a_rotating_forwarded_for_does_not_escape_the_login_limit(
    database_url: str, tmp_path: Path
) -> None:
    with Processes(tmp_path / "processes", database_url) as processes:
        api = processes.api("api")
        await api.wait_ready()
        async with api.client() as client:
            registered = await client.post(
                "/api/v1/auth/register", json={"email": "victim@example.com", "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            codes = []
            for attempt in range(12):
                response = await client.post(
                    "/api/v1/auth/login",
                    json={"email": "victim@example.com", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
                )
                codes.append(response.status_code)
            guessed = await client.post(
                "/api/v1/auth/login",
                json={"email": "victim@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
    assert guessed.status_code == 429  # the right password, from a "new" address: still blocked


async def test_a_trusted_proxy_forwards_the_client_address(
    database_url: str, tmp_path: Path
) -> None:
    with Processes(
        tmp_path / "processes",
        database_url,
        extra_env={"GENWAY_TRUSTED_PROXIES": "127.0.0.1"},
    ) as processes:
        api = processes.api("api")
        await api.wait_ready()
        async with api.client() as client:
            registered = await client.post(
                "/api/v1/auth/register", json={"email": "user@example.com", "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text

            async def wrong_login(address: str) -> int:
                response = await client.post(
                    "/api/v1/auth/login",
                    json={"email": "user@example.com", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"{address}, 127.0.0.1"},
                )
                return response.status_code

            # Twelve clients behind the proxy, one failure each: nobody reaches the limit.
            rotating = [await wrong_login(f"203.0.113.{n + 1}") for n in range(12)]
            # One of them keeps failing: only that address is blocked.
            repeated = [await wrong_login("198.51.100.7") for _ in range(11)]
            elsewhere = await client.post(
                "/api/v1/auth/login",
                json={"email": "user@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.8"},
            )
    assert rotating == [401] * 12
    assert repeated[:10] == [401] * 10 and repeated[10] == 429, repeated
    assert elsewhere.status_code == 200, elsewhere.text
