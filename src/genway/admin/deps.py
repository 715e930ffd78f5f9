"""Platform administrators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from genway.auth.deps import CurrentPrincipal
from genway.auth.principal import Principal
from genway.errors import Forbidden


async def platform_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_platform_admin:
        raise Forbidden("Platform administrators only")
    return principal


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]
