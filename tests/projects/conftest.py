"""Projects tests run without a worker, with small size limits so the limits are testable."""

from __future__ import annotations

import pytest

from genway.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"project_file_max_bytes": 1000, "project_max_bytes": 2500})
