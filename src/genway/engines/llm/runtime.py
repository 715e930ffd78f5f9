"""The model router a process uses, built from settings once and shared by its executors.

Providers hold HTTP connection pools, so building them per job would open (and leak) a pool per
run. They are cached per event loop as well as per configuration: an SDK client's connections
belong to the loop that opened them, and a process that runs several loops one after another
(the test suite does) must not hand a closed loop's client to the next one.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from genway.config import Settings
from genway.engines.llm.prices import PriceTableError, load_prices
from genway.engines.llm.providers import RetryPolicy
from genway.engines.llm.router import (
    ModelRouter,
    RouteRow,
    RoutingError,
    build_providers,
    load_routing_table,
)


@dataclass(frozen=True)
class ProviderInfo:
    """A vendor as configured: where it is reached and whether a key is set."""

    name: str
    base_url: str | None
    has_key: bool

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.has_key)


@dataclass(frozen=True)
class _RouterKey:
    openai_base_url: str | None
    openai_api_key: str | None
    anthropic_base_url: str | None
    anthropic_api_key: str | None
    routing_file: str | None
    timeout_s: float
    max_retries: int
    retry_base_s: float
    max_tokens: int
    prices_file: str | None

    @classmethod
    def of(cls, settings: Settings) -> _RouterKey:
        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            settings.openai_base_url,
            secret(settings.openai_api_key),
            settings.anthropic_base_url,
            secret(settings.anthropic_api_key),
            str(settings.routing_file) if settings.routing_file else None,
            settings.llm_timeout_s,
            settings.llm_max_retries,
            settings.llm_retry_base_s,
            settings.llm_max_tokens,
            str(settings.model_prices_file) if settings.model_prices_file else None,
        )


_routers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_RouterKey, ModelRouter]] = (
    weakref.WeakKeyDictionary()
)


def build_router(settings: Settings) -> ModelRouter:
    """A new router for these settings. Raises RoutingError (bad routing file), OSError."""
    key = _RouterKey.of(settings)
    retry = RetryPolicy(max_retries=key.max_retries, base_delay_s=key.retry_base_s)
    providers = build_providers(
        key.openai_base_url,
        key.openai_api_key,
        key.anthropic_base_url,
        key.anthropic_api_key,
        key.timeout_s,
        retry=retry,
    )
    table = load_routing_table(settings.routing_file)
    try:
        prices = load_prices(settings.model_prices_file)
    except PriceTableError as exc:
        raise RoutingError(str(exc)) from exc
    return ModelRouter(
        table, providers, max_tokens=key.max_tokens, timeout_s=key.timeout_s, prices=prices
    )


def get_router(settings: Settings) -> ModelRouter:
    """This process's router for `settings` (built on first use in the running event loop)."""
    loop = asyncio.get_running_loop()
    routers = _routers.setdefault(loop, {})
    key = _RouterKey.of(settings)
    router = routers.get(key)
    if router is None:
        router = routers[key] = build_router(settings)
    return router


async def close_routers() -> None:
    """Close the running loop's routers (their providers' HTTP connections)."""
    routers = _routers.pop(asyncio.get_running_loop(), {})
    for router in routers.values():
        await router.aclose()


def provider_info(settings: Settings) -> list[ProviderInfo]:
    """Each vendor Genway can reach, and how it is configured."""
    return [
        ProviderInfo("openai", settings.openai_base_url, settings.openai_api_key is not None),
        ProviderInfo(
            "anthropic", settings.anthropic_base_url, settings.anthropic_api_key is not None
        ),
    ]


def llm_health(settings: Settings) -> dict[str, Any]:
    """For `/health`: the vendors configured. None is called (a request costs money and counts
    against the vendor's limits), so "ok" means at least one is configured; "not_configured"
    means none is."""
    providers = [info.name for info in provider_info(settings) if info.configured]
    return {"status": "ok" if providers else "not_configured", "providers": providers}


def describe_routes(settings: Settings) -> list[RouteRow]:
    """The routing table for display, without opening any connection.

    Raises RoutingError (bad routing file) and OSError (unreadable file)."""
    configured = {info.name for info in provider_info(settings) if info.configured}
    rows = []
    for task, models in load_routing_table(settings.routing_file).items():
        vendors = [model.partition(":")[0] for model in models]
        available = dict.fromkeys(vendor for vendor in vendors if vendor in configured)
        rows.append(RouteRow(task, tuple(models), tuple(available)))
    return rows
