"""Where a webhook may be sent: `http(s)` URLs whose host resolves only to public addresses
(no loopback, private, link-local, multicast or reserved address, cloud metadata included),
checked when a target is set and again before every send, on the addresses then connected to
(a DNS answer that changed since, the rebinding trick, is caught there)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from genway.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TargetPolicy:
    allow_private: bool = False
    allow_http: bool = False


_configured = TargetPolicy()


def configure_targets(policy: TargetPolicy) -> None:
    """The process's policy for job webhooks (set from the settings by the runtime)."""
    global _configured
    _configured = policy


def configured_policy() -> TargetPolicy:
    return _configured


class TargetRefused(InvalidInput):
    """A webhook URL Genway will not send to."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int


def parse_target(url: str, policy: TargetPolicy) -> Target:
    """Check a URL's form. Raises TargetRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"Invalid webhook URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("A webhook URL must start with https:// (or http://)")
    if parts.scheme == "http" and not policy.allow_http:
        raise TargetRefused(
            "A webhook URL must use https (set GENWAY_WEBHOOK_ALLOW_HTTP=true to allow http)"
        )
    if not parts.hostname:
        raise TargetRefused("A webhook URL needs a host")
    if parts.username or parts.password:
        raise TargetRefused("A webhook URL must not carry credentials")
    default_port = 443 if parts.scheme == "https" else 80
    return Target(url, parts.scheme, parts.hostname, port or default_port)


def refused_address(address: IPAddress) -> str | None:
    """Why an address is not a public one (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for flag, what in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, flag):
            return what
    if not address.is_global:
        return "not public"
    return None


async def resolve(target: Target, policy: TargetPolicy) -> list[IPAddress]:
    """The addresses to connect to, every one allowed by the policy. Raises TargetRefused."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise TargetRefused(f"Webhook host '{target.host}' does not resolve: {exc}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not policy.allow_private:
        for address in addresses:
            why = refused_address(address)
            if why is not None:
                raise TargetRefused(
                    f"Webhook host '{target.host}' resolves to {address}, a {why} address; "
                    "only public addresses are allowed (GENWAY_WEBHOOK_ALLOW_PRIVATE=true "
                    "lifts this)"
                )
    return addresses


async def check_target(url: str, policy: TargetPolicy) -> Target:
    """Form and addresses of a URL about to be stored. Raises TargetRefused."""
    target = parse_target(url, policy)
    await resolve(target, policy)
    return target
