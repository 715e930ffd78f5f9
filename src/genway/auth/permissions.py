"""Roles and the one table that says what each role may do."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_most(self, other: Role) -> Role:
        """The weaker of two roles."""
        return self if self.rank <= other.rank else other


_RANKS = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Action(StrEnum):
    READ = "read"
    CREATE_JOBS = "jobs:create"
    CANCEL_JOBS = "jobs:cancel"
    WRITE_PROJECTS = "projects:write"
    MANAGE_KEYS = "keys:manage"
    MANAGE_MEMBERS = "members:manage"
    MANAGE_WEBHOOKS = "webhooks:manage"
    MANAGE_QUEUE = "queue:manage"
    MANAGE_INTEGRATIONS = "integrations:manage"
    MANAGE_ORG = "org:manage"

    def describe(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Action.READ: "read this organization's data",
    Action.CREATE_JOBS: "create jobs",
    Action.CANCEL_JOBS: "cancel jobs",
    Action.WRITE_PROJECTS: "create or change projects",
    Action.MANAGE_KEYS: "manage API keys",
    Action.MANAGE_MEMBERS: "manage members",
    Action.MANAGE_WEBHOOKS: "manage webhooks",
    Action.MANAGE_QUEUE: "pause the queue or reorder other members' jobs",
    Action.MANAGE_INTEGRATIONS: "connect or disconnect GitHub",
    Action.MANAGE_ORG: "change the organization or its tier",
}


_VIEWER = {Action.READ}
_MEMBER = _VIEWER | {Action.CREATE_JOBS, Action.CANCEL_JOBS, Action.WRITE_PROJECTS}
_ADMIN = _MEMBER | {
    Action.MANAGE_KEYS,
    Action.MANAGE_MEMBERS,
    Action.MANAGE_WEBHOOKS,
    Action.MANAGE_QUEUE,
    Action.MANAGE_INTEGRATIONS,
}
_OWNER = _ADMIN | {Action.MANAGE_ORG}

PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.MEMBER: frozenset(_MEMBER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_OWNER),
}


def can(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]
