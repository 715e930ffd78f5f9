"""Schema bases: requests reject unknown fields; responses read from ORM objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_ID = 2**31 - 1  # the largest id both databases hold (PostgreSQL INTEGER keys)
# An id in a path, query or body: 1 .. 2^31-1, so out of range is a 422 naming the field (not a
# database overflow), and the OpenAPI document says so.
Id = Annotated[int, Ge(1), Le(MAX_ID)]


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError("date is out of range once converted to UTC") from exc


# A moment in a query or body: naive means UTC; one that has no UTC form is a 422.
UtcDatetime = Annotated[datetime, AfterValidator(_in_utc)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
