"""Webhook delivery as GitHub's Hookshot does it: signed POSTs, sent in the background, one
hook's deliveries in order, each recorded with the receiver's answer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.github.schema import github_openapi
from tests.fakes.github.state import Delivery, Hook, Repo

HOOKSHOT_TIMEOUT_S = 10.0


def sign_webhook(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends: `sha256=<hex HMAC of body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _sign_sha1(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


class WebhookSender:
    """Sends webhooks without holding up whoever caused them, and lets tests await them."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.violations: list[str] = []
        self._client = httpx.AsyncClient(timeout=HOOKSHOT_TIMEOUT_S, trust_env=False)
        self._tasks: set[asyncio.Task[None]] = set()
        self._hook_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._answered = asyncio.Condition()
        self._agent = f"GitHub-Hookshot/{secrets.token_hex(4)[:7]}"

    def send(self, repo: Repo, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """Queue `event` to every active hook of `repo` subscribed to it, after checking the
        payload against the webhook's schema in GitHub's description (`violations`)."""
        self.violations += github_openapi().webhook_violations(
            event, payload.get("action"), payload
        )
        sent = []
        for hook in repo.hooks:
            if not hook.wants(event):
                continue
            delivery = Delivery(
                event=event,
                action=payload.get("action"),
                delivery_id=str(uuid.uuid4()),
                hook_id=hook.id,
                payload=payload,
            )
            self.deliveries.append(delivery)
            task = asyncio.get_running_loop().create_task(self._deliver(repo, hook, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            sent.append(delivery)
        return sent

    async def _deliver(self, repo: Repo, hook: Hook, delivery: Delivery) -> None:
        async with self._hook_locks[hook.id]:
            body, content_type = self._encode(hook, delivery.payload)
            headers = {
                "Accept": "*/*",
                "Content-Type": content_type,
                "User-Agent": self._agent,
                "X-GitHub-Delivery": delivery.delivery_id,
                "X-GitHub-Event": delivery.event,
                "X-GitHub-Hook-ID": str(hook.id),
                "X-GitHub-Hook-Installation-Target-ID": str(repo.id),
                "X-GitHub-Hook-Installation-Target-Type": "repository",
            }
            if hook.secret:
                headers["X-Hub-Signature"] = _sign_sha1(hook.secret, body)
                headers["X-Hub-Signature-256"] = sign_webhook(hook.secret, body)
            try:
                response = await self._client.post(hook.url, content=body, headers=headers)
            except httpx.HTTPError as error:
                delivery.error = f"{type(error).__name__}: {error}"
                hook.last_response = {"code": None, "status": "failed", "message": str(error)}
            else:
                delivery.status = response.status_code
                delivery.response_body = response.text
                ok = response.is_success
                hook.last_response = {
                    "code": response.status_code,
                    "status": "active" if ok else "failed",
                    "message": "OK" if ok else f"Invalid HTTP Response: {response.status_code}",
                }
            delivery.answered = True
        async with self._answered:
            self._answered.notify_all()

    @staticmethod
    def _encode(hook: Hook, payload: dict[str, Any]) -> tuple[bytes, str]:
        text = json.dumps(payload, separators=(",", ":"))
        if hook.content_type == "form":
            return urlencode({"payload": text}).encode(), "application/x-www-form-urlencoded"
        return text.encode(), "application/json"

    async def wait_for(
        self,
        event: str,
        action: str | None,
        timeout: float,
        predicate: Callable[[Delivery], bool] | None,
    ) -> Delivery:
        """The first answered delivery of `event` (and `action`) that `predicate` accepts."""
        deadline = time.monotonic() + timeout

        def match() -> Delivery | None:
            for delivery in self.deliveries:
                if (
                    delivery.answered
                    and delivery.event == event
                    and (action is None or delivery.action == action)
                    and (predicate is None or predicate(delivery))
                ):
                    return delivery
            return None

        async with self._answered:
            while (found := match()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(d.event, d.action, d.status) for d in self.deliveries]
                    raise TimeoutError(
                        f"no answered {event}/{action} delivery within {timeout}s; sent: {seen}"
                    )
                try:
                    await asyncio.wait_for(self._answered.wait(), remaining)
                except TimeoutError:
                    continue
            return found

    async def drain(self, timeout: float = HOOKSHOT_TIMEOUT_S + 1) -> None:
        """Wait for deliveries still in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        await self.drain()
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()
