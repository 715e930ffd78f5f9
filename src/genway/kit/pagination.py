"""Offset pages in Codegen's shape: `{"items", "total", "page", "size", "pages"}`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
MAX_LIMIT = 100
MAX_SKIP = 1_000_000_000


class PageParams(BaseModel):
    skip: int = 0
    limit: int = MAX_LIMIT


async def page_params(
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP, description="Items to skip")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Page size, at most 100")
    ] = MAX_LIMIT,
) -> PageParams:
    return PageParams(skip=skip, limit=limit)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def build(cls, items: Sequence[T], total: int, params: PageParams) -> Page[T]:
        return cls(
            items=list(items),
            total=total,
            page=params.skip // params.limit + 1,
            size=params.limit,
            pages=math.ceil(total / params.limit) if total else 0,
        )


async def paginate(
    session: AsyncSession, query: Select[T], params: PageParams
) -> tuple[Sequence[T], int]:
    """One page of `query`'s rows plus the total count of rows it matches."""
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await session.scalars(query.offset(params.skip).limit(params.limit))).all()
    return rows, int(total or 0)
