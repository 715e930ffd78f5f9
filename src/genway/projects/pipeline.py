"""A project's pipeline settings (seed 004's Project model): repository rules, setup, test and
lint commands, secrets, auto-merge, plan confirmation, the planning statement and how many fix
attempts a failing pull request gets.

They are top-level fields of a project's requests and answers; all but the secrets are kept in
the project's `settings` (where agent runs already read them). Secrets are write-only: the map is
stored encrypted (`projects.secrets_encrypted`), and only their names are ever shown.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, ValidationError

from genway.kit.schemas import RequestModel

if TYPE_CHECKING:
    from genway.kit.crypto import SecretBox
    from genway.projects.models import Project

DEFAULT_MAX_FIX_ATTEMPTS = 3
MAX_SECRETS = 50
Command = Annotated[str, Field(min_length=1, max_length=4000)]
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
GITHUB_REPO = Field(
    default=None,
    max_length=200,
    pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$",
    description="The GitHub repository (owner/name) the project is pinned to; null unpins",
)


class MergeMethod(StrEnum):
    MERGE = "merge"
    SQUASH = "squash"
    REBASE = "rebase"


class PipelineSettings(BaseModel):
    """The settings as runs and validations read them, with their defaults."""

    repository_rules: str = ""
    setup_commands: list[str] = Field(default_factory=list)
    test_commands: list[str] = Field(default_factory=list)
    lint_commands: list[str] | None = Field(
        default=None, description="Static checks; null: the default for the repository's language"
    )
    auto_merge_enabled: bool = False
    auto_confirm_plans: bool = False
    planning_statement: str = ""
    max_fix_attempts: int = DEFAULT_MAX_FIX_ATTEMPTS
    merge_method: MergeMethod = MergeMethod.SQUASH

    @classmethod
    def of(cls, settings: dict[str, Any] | None) -> PipelineSettings:
        """The pipeline part of a project's settings; a value of the wrong type (written before
        these fields were checked) falls back to its default."""
        raw = {k: v for k, v in (settings or {}).items() if k in cls.model_fields}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            return cls.model_validate({k: v for k, v in raw.items() if k not in bad})


PIPELINE_KEYS = tuple(PipelineSettings.model_fields)


class PipelineFields(RequestModel):
    """The pipeline fields a project request may carry; absent ones keep their value."""

    github_repo: str | None = GITHUB_REPO
    repository_rules: str | None = Field(default=None, max_length=20_000)
    setup_commands: list[Command] | None = Field(default=None, max_length=50)
    test_commands: list[Command] | None = Field(default=None, max_length=50)
    lint_commands: list[Command] | None = Field(default=None, max_length=50)
    auto_merge_enabled: bool | None = None
    auto_confirm_plans: bool | None = None
    planning_statement: str | None = Field(default=None, max_length=10_000)
    max_fix_attempts: int | None = Field(default=None, ge=0, le=10)
    merge_method: MergeMethod | None = None
    secrets: dict[SecretName, Annotated[str, Field(max_length=10_000)] | None] | None = Field(
        default=None,
        max_length=MAX_SECRETS,
        description="Environment variables for setup and test commands (write-only: answers show "
        "their names). The keys sent are set; a key sent as null is removed",
    )


def settings_changes(fields: dict[str, Any]) -> dict[str, Any]:
    """The settings keys a request sets (`lint_commands: null` is kept: it means "default")."""
    changes = {}
    for key in PIPELINE_KEYS:
        if key in fields and (fields[key] is not None or key == "lint_commands"):
            value = fields[key]
            changes[key] = value.value if isinstance(value, StrEnum) else value
    return changes


def read_secrets(box: SecretBox, project: Project) -> dict[str, str]:
    """The project's secrets in clear, for the sandboxed commands that get them."""
    if not project.secrets_encrypted:
        return {}
    loaded: dict[str, str] = json.loads(box.decrypt(project.secrets_encrypted))
    return loaded


def apply_secrets(box: SecretBox, project: Project, changes: dict[str, str | None]) -> None:
    """Set the secrets sent, remove those sent as null. Raises ValueError past MAX_SECRETS."""
    current = read_secrets(box, project)
    for name, value in changes.items():
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    if len(current) > MAX_SECRETS:
        raise ValueError(f"A project holds at most {MAX_SECRETS} secrets")
    project.secrets_encrypted = box.encrypt(json.dumps(current)) if current else None
    project.secret_names = sorted(current)


def reencrypt_secrets(box: SecretBox, project: Project) -> bool:
    """Encrypt the secrets again with the newest key (`genway secrets rotate`)."""
    if not project.secrets_encrypted:
        return False
    project.secrets_encrypted = box.rotate(project.secrets_encrypted)
    return True
