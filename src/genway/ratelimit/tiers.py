"""What each tier allows, and the effective limits of one organization (tier + overrides)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from genway.orgs.models import Organization, Tier


@dataclass(frozen=True)
class TierLimits:
    """None means unlimited."""

    requests_per_window: int | None
    window_s: int
    user_requests_per_window: int | None
    jobs_per_minute: int | None
    images_per_day: int | None
    agent_runs_per_day: int | None
    max_concurrent_jobs: int | None
    # What one ComfyUI workflow may cost (engines/comfyui/cost.py): its nodes, the pixels
    # (width x height x batch) of the largest image or latent it makes, its seconds executing.
    workflow_max_nodes: int | None
    workflow_max_pixels: int | None
    workflow_max_seconds: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MEGAPIXEL = 1024 * 1024

# requests/window, window (s), per-user requests/window, jobs/minute, images/day, agent runs/day,
# concurrent jobs, then one workflow's nodes, pixels and seconds.
DEFAULT_TIERS: dict[Tier, TierLimits] = {
    Tier.FREE: TierLimits(60, 30, 60, 10, 10, 5, 1, 50, 4 * MEGAPIXEL, 120),
    Tier.BASIC: TierLimits(120, 30, 120, 30, 100, 50, 2, 100, 8 * MEGAPIXEL, 300),
    Tier.PRO: TierLimits(300, 30, 300, 120, 1_000, 500, 5, 250, 16 * MEGAPIXEL, 600),
    Tier.ENTERPRISE: TierLimits(6_000, 30, 6_000, 6_000, None, None, None, None, None, None),
}

OVERRIDABLE = tuple(f.name for f in fields(TierLimits))


_configured: dict[Tier, TierLimits] = dict(DEFAULT_TIERS)


def tier_table(overrides: dict[str, dict[str, Any]] | None = None) -> dict[Tier, TierLimits]:
    """The tier table, with per-tier changes from settings (`GENWAY_TIER_LIMITS`) applied."""
    table = dict(DEFAULT_TIERS)
    for name, changes in (overrides or {}).items():
        tier = Tier(name)
        table[tier] = replace(table[tier], **{k: v for k, v in changes.items() if k in OVERRIDABLE})
    return table


def configure_tiers(overrides: dict[str, dict[str, Any]] | None) -> None:
    """Set this process's tier table from settings (called at API and worker start)."""
    global _configured
    _configured = tier_table(overrides)


def current_tier_table() -> dict[Tier, TierLimits]:
    return _configured


def limits_for(org: Organization, table: dict[Tier, TierLimits] | None = None) -> TierLimits:
    """The organization's tier limits with its own overrides (set by platform admins) applied."""
    base = (table or _configured)[Tier(org.tier)]
    own = {k: v for k, v in (org.overrides or {}).items() if k in OVERRIDABLE}
    return replace(base, **own) if own else base
