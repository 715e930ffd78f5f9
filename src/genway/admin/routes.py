"""`/api/v1/admin/*`: platform administrators only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from genway.admin import service
from genway.admin.deps import PlatformAdmin
from genway.admin.schemas import AdminOrg, AdminOrgUpdate, AdminUser, AdminUserUpdate
from genway.db import SessionDep
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.orgs.models import Organization
from genway.ratelimit.tiers import limits_for

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _org(org: Organization) -> AdminOrg:
    return AdminOrg.model_validate(
        {
            "id": org.id,
            "name": org.name,
            "display_name": org.display_name,
            "status": org.status,
            "tier": org.tier,
            "overrides": org.overrides or {},
            "limits": limits_for(org).as_dict(),
            "created_at": org.created_at,
        }
    )


@router.get("/users", response_model=Page[AdminUser])
async def list_users(_admin: PlatformAdmin, session: SessionDep, page: PageDep) -> Page[AdminUser]:
    users, total = await service.list_users(session, page)
    return Page.build([AdminUser.model_validate(u) for u in users], total, page)


@router.patch("/users/{user_id}", response_model=AdminUser)
async def update_user(
    user_id: Id, body: AdminUserUpdate, admin: PlatformAdmin, session: SessionDep
) -> AdminUser:
    return AdminUser.model_validate(
        await service.update_user(session, user_id, body, admin.user_id)
    )


@router.get("/orgs", response_model=Page[AdminOrg])
async def list_orgs(_admin: PlatformAdmin, session: SessionDep, page: PageDep) -> Page[AdminOrg]:
    orgs, total = await service.list_orgs(session, page)
    return Page.build([_org(o) for o in orgs], total, page)


@router.patch("/orgs/{org_id}", response_model=AdminOrg)
async def update_org(
    org_id: Id, body: AdminOrgUpdate, _admin: PlatformAdmin, session: SessionDep
) -> AdminOrg:
    return _org(await service.update_org(session, org_id, body))


@router.get("/stats")
async def stats(_admin: PlatformAdmin, session: SessionDep) -> dict[str, Any]:
    return await service.collect_stats(session)
