"""`/v1/organizations/{org_id}/api-keys`: an organization's keys, managed by its admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from genway.auth.deps import OrgContext, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.keys import service
from genway.keys.schemas import APIKeyCreate, APIKeyCreated, APIKeyResponse
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id

router = APIRouter(prefix="/v1/organizations/{org_id}/api-keys", tags=["api-keys"])

KeyManager = Annotated[OrgContext, require(Action.MANAGE_KEYS)]


async def create_key_for(
    session: SessionDep, context: OrgContext, body: APIKeyCreate
) -> APIKeyCreated:
    key, secret = await service.create_api_key(
        session,
        org_id=context.org_id,
        user_id=context.user_id,
        maker_role=context.role,
        name=body.name,
        role=body.role,
        expires_in_days=body.expires_in_days,
    )
    return APIKeyCreated.model_validate(
        {**APIKeyResponse.model_validate(key).model_dump(), "api_key": secret}
    )


@router.post("", response_model=APIKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: APIKeyCreate, context: KeyManager, session: SessionDep
) -> APIKeyCreated:
    return await create_key_for(session, context, body)


@router.get("", response_model=Page[APIKeyResponse])
async def list_api_keys(
    context: KeyManager, session: SessionDep, page: PageDep
) -> Page[APIKeyResponse]:
    keys, total = await service.list_api_keys(session, context.org_id, page)
    return Page.build([APIKeyResponse.model_validate(k) for k in keys], total, page)


@router.get("/{key_id}", response_model=APIKeyResponse)
async def get_api_key(key_id: Id, context: KeyManager, session: SessionDep) -> APIKeyResponse:
    return APIKeyResponse.model_validate(await service.get_api_key(session, context.org_id, key_id))


@router.delete("/{key_id}", response_model=APIKeyResponse)
async def revoke_api_key(key_id: Id, context: KeyManager, session: SessionDep) -> APIKeyResponse:
    key = await service.get_api_key(session, context.org_id, key_id)
    revoked = await service.revoke_api_key(
        session, key, by_user_id=context.user_id, by_role=context.role
    )
    return APIKeyResponse.model_validate(revoked)
