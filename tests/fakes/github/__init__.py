"""A protocol-faithful local GitHub for tests: REST API, git smart HTTP and webhooks.

    async with FakeGitHub(tmp_path / "github") as gh:
        token = gh.add_user("octo")
        repo = gh.create_repo("octo", "demo", {"README.md": "hi\\n"})

Every REST answer is checked against GitHub's published OpenAPI description
(`gh.schema_violations`); webhook payloads start from @octokit/webhooks-examples.
"""

from tests.fakes.github.examples import webhook_example
from tests.fakes.github.hooks import sign_webhook
from tests.fakes.github.server import FakeGitHub
from tests.fakes.github.state import (
    CheckRun,
    CommitStatus,
    Delivery,
    Hook,
    IssueComment,
    PullRequest,
    Repo,
    RequestRecord,
)

__all__ = [
    "CheckRun",
    "CommitStatus",
    "Delivery",
    "FakeGitHub",
    "Hook",
    "IssueComment",
    "PullRequest",
    "Repo",
    "RequestRecord",
    "sign_webhook",
    "webhook_example",
]
