"""Artifact responses."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from pydantic import Field

from genway.kit.schemas import ResponseModel
from genway.storage.models import Artifact
from genway.storage.signing import UrlSigner


class ArtifactResponse(ResponseModel):
    id: int
    kind: str
    name: str
    job_id: int | None
    size: int
    content_type: str
    sha256: str
    created_at: datetime
    url: str | None = Field(description="Download path for API clients (send your credentials)")
    signed_url: str = Field(description="Download URL that needs no header, until it expires")

    @classmethod
    def of(cls, artifact: Artifact, signer: UrlSigner, base: str) -> ArtifactResponse:
        url = None
        if artifact.job_id is not None:
            url = (
                f"{base}/v1/organizations/{artifact.org_id}/jobs/{artifact.job_id}"
                f"/artifacts/{quote(artifact.name)}"
            )
        return cls(
            id=artifact.id,
            kind=artifact.kind,
            name=artifact.name,
            job_id=artifact.job_id,
            size=artifact.size,
            content_type=artifact.content_type,
            sha256=artifact.sha256,
            created_at=artifact.created_at,
            url=url,
            signed_url=base + signer.sign(artifact.org_id, artifact.id, artifact.name),
        )


class ArtifactList(ResponseModel):
    items: list[ArtifactResponse]
