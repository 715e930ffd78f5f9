"""Project and file requests and responses (canonical, and the seed 002/004 legacy shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, ConfigDict, Field, model_validator

from genway.kit.json_limits import bounded_json
from genway.kit.schemas import RequestModel, ResponseModel
from genway.projects.pipeline import (
    DEFAULT_MAX_FIX_ATTEMPTS,
    MergeMethod,
    PipelineFields,
    PipelineSettings,
)

ProjectSettings = Annotated[
    dict[str, Any], AfterValidator(lambda v: bounded_json(v, max_bytes=64 * 1024, max_depth=8))
]
NAME = Field(min_length=1, max_length=200)
DESCRIPTION = Field(default="", max_length=10_000)
REPOSITORY_URL = Field(
    default=None, max_length=500, pattern=r"^(https?|ssh|git|file)://\S+$|^git@\S+$|^/\S*$"
)
LANGUAGE = Field(default=None, max_length=50, pattern=r"^[A-Za-z0-9_+#.\- ]+$")


class ProjectCreate(PipelineFields):
    """A `file://` URL or absolute path in `repository_url` is cloned (under
    GENWAY_GIT_IMPORT_DIRS); an `https://` one only with `clone: true` (else it is a link).
    `github_repo` pins the project to a GitHub repository (the organization's GitHub
    connection registers a webhook there)."""

    name: str = NAME
    description: str = DESCRIPTION
    repository_url: str | None = REPOSITORY_URL
    settings: ProjectSettings = Field(default_factory=dict)
    clone: bool | None = None


class ProjectUpdate(PipelineFields):
    """Only the fields sent are changed; `settings` replaces the whole object (the pipeline
    fields sent beside it are applied after it); `github_repo: null` unpins."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    repository_url: str | None = REPOSITORY_URL
    settings: ProjectSettings | None = None


class ProjectResponse(ResponseModel):
    id: int
    organization_id: int = Field(validation_alias=AliasChoices("org_id", "organization_id"))
    name: str
    description: str
    repository_url: str | None
    settings: dict[str, Any]
    head_revision: int
    total_bytes: int
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    github_repo: str | None = None
    repository_rules: str = ""
    setup_commands: list[str] = Field(default_factory=list)
    test_commands: list[str] = Field(default_factory=list)
    lint_commands: list[str] | None = None
    auto_merge_enabled: bool = False
    auto_confirm_plans: bool = False
    planning_statement: str = ""
    max_fix_attempts: int = DEFAULT_MAX_FIX_ATTEMPTS
    merge_method: MergeMethod = MergeMethod.SQUASH
    secret_names: list[str] = Field(
        default_factory=list,
        description="The names of the project's secrets (values are write-only)",
    )

    @model_validator(mode="before")
    @classmethod
    def _with_pipeline(cls, value: Any) -> Any:
        """A project row: its columns, with the pipeline settings read out of `settings`."""
        if isinstance(value, dict) or not hasattr(value, "settings"):
            return value
        fields = {
            name: getattr(value, name)
            for name in value.__table__.columns.keys()
            if name not in ("secrets_encrypted", "github_webhook_secret")
        }
        pipeline = PipelineSettings.of(value.settings).model_dump()
        return {**fields, **pipeline, "secret_names": list(value.secret_names or [])}


class FilePut(RequestModel):
    # File content is stored byte for byte, and paths are checked as sent, so nothing is stripped.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    path: str = Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+$")
    content: str
    language: str | None = LANGUAGE


class FileSummary(ResponseModel):
    path: str
    language: str | None
    size_bytes: int
    sha256: str
    revision: int | None = Field(description="The revision that last wrote it; null on branches")
    updated_at: datetime


class FileResponse(FileSummary):
    project_id: int
    content: str


class FileWriteResponse(FileResponse):
    created: bool


class FileChange(ResponseModel):
    path: str
    action: str
    language: str | None
    size_bytes: int
    sha256: str | None


class FileChangeWithContent(FileChange):
    content: str | None


class RevisionSummary(ResponseModel):
    revision: int
    author_id: int | None
    job_id: int | None
    message: str
    created_at: datetime
    changes: list[FileChange]


class RevisionResponse(RevisionSummary):
    project_id: int
    changes: list[FileChangeWithContent]  # type: ignore[assignment]


class CommitResponse(ResponseModel):
    sha: str
    revision: int | None
    message: str
    author_name: str
    author_email: str
    created_at: datetime
    parents: list[str]


class DiffFile(ResponseModel):
    path: str
    old_path: str | None
    status: str
    insertions: int
    deletions: int
    patch: str | None
    truncated: bool


class DiffResponse(ResponseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    from_: str | None = Field(alias="from")
    to: str | None
    files: list[DiffFile]
    files_changed: int
    insertions: int
    deletions: int
    truncated: bool = Field(description="Some patches were cut (64 KiB a file, 1 MiB in all)")


class BranchResponse(ResponseModel):
    name: str
    sha: str | None
    default: bool


class MergeRequest(RequestModel):
    branch: str = Field(min_length=1, max_length=200)
    message: str | None = Field(default=None, max_length=500)


class MergeResponse(ResponseModel):
    revision: int
    sha: str
    fast_forward: bool


class ImportResponse(ResponseModel):
    project_id: int
    head_revision: int


class LegacyProjectCreate(PipelineFields):
    """Seed 002 (`title`, `mode`, `tech_stack`) and seed 004 (`name`, `github_url`) shapes."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"anyOf": [{"required": ["name"]}, {"required": ["title"]}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str = DESCRIPTION
    repository_url: str | None = REPOSITORY_URL
    github_url: str | None = REPOSITORY_URL
    mode: str | None = Field(default=None, max_length=50)
    tech_stack: list[str] | None = Field(default=None, max_length=50)
    settings: ProjectSettings = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_a_name(self) -> LegacyProjectCreate:
        if not (self.name or self.title):
            raise ValueError("'name' (or 'title') is required")
        return self


class LegacyProjectUpdate(PipelineFields):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    repository_url: str | None = REPOSITORY_URL
    github_url: str | None = REPOSITORY_URL
    mode: str | None = Field(default=None, max_length=50)
    tech_stack: list[str] | None = Field(default=None, max_length=50)
    settings: ProjectSettings | None = None


class LegacyProjectResponse(ProjectResponse):
    title: str
    user_id: int | None
    status: str = "active"
    github_url: str | None
    mode: str | None = None
    tech_stack: list[str] | None = None


class LegacyFileList(ResponseModel):
    project_id: int
    count: int
    files: list[FileResponse]
