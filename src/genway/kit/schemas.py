"""Schema bases: requests reject unknown fields; responses read from ORM objects."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict

MAX_ID = 2**63 - 1  # the largest id the databases hold
# An id in a path, query or body: 1 .. 2^63-1, so out of range is a 422 naming the field (not a
# database overflow), and the OpenAPI document says so.
Id = Annotated[int, Ge(1), Le(MAX_ID)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
