"""GitHub tests: Genway against the fake GitHub (`tests/fakes/github`), with the embedded worker
and the fake LLM vendors for agent runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from genway.config import Settings
from tests.agent_support import (
    close_llm_clients,
    fake_anthropic,
    fake_openai,
    llm_settings,
    org_url,
    routing_file,
)
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.github import FakeGitHub
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import Tenant

__all__ = ["close_llm_clients", "fake_anthropic", "fake_openai", "routing_file"]

CALC = "def add(a, b):\n    return a + b\n"
TESTS = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)

# The repository's test runner: unittest, with a JUnit report (what pytest --junitxml writes).
RUN_TESTS = """import unittest
from xml.sax.saxutils import escape, quoteattr


class Recorder(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.cases = []

    def addSuccess(self, test):
        self.cases.append((test.id(), None))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.cases.append((test.id(), self.failures[-1][1]))

    def addError(self, test, err):
        super().addError(test, err)
        self.cases.append((test.id(), self.errors[-1][1]))


result = Recorder()
unittest.defaultTestLoader.discover(".").run(result)
with open("junit.xml", "w") as out:
    out.write('<testsuite name="calc" tests="%d">' % len(result.cases))
    for name, failure in result.cases:
        classname, _, method = name.rpartition(".")
        out.write("<testcase classname=%s name=%s>" % (quoteattr(classname), quoteattr(method)))
        if failure:
            message = quoteattr(failure.strip().splitlines()[-1])
            out.write("<failure message=%s>%s</failure>" % (message, escape(failure)))
        out.write("</testcase>")
    out.write("</testsuite>")
bad = len(result.failures) + len(result.errors)
print(f"{len(result.cases)} tests, {bad} failed")
raise SystemExit(1 if bad else 0)
"""


@pytest.fixture
async def github(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(tmp_path / "github") as fake:
        yield fake


@pytest.fixture
def settings(
    settings: Settings,
    github: FakeGitHub,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
    routing_file: Path,
    close_llm_clients: None,
) -> Settings:
    return llm_settings(
        settings,
        fake_openai,
        fake_anthropic,
        routing_file,
        github_api_url=github.api_url,
        log_level="INFO",  # every request logged: the tests look for secrets in the log
        llm_timeout_s=2.0,
        agent_timeout_s=60,
    )


@pytest.fixture
def octo(github: FakeGitHub) -> str:
    """The token of GitHub user `octo`, who owns `octo/demo` (a small Python repository)."""
    token = github.add_user("octo")
    files = {"calc.py": CALC, "test_calc.py": TESTS, "run_tests.py": RUN_TESTS}
    github.create_repo("octo", "demo", files)
    return token


async def connect(client: httpx.AsyncClient, tenant: Tenant, token: str) -> httpx.Response:
    return await client.put(
        org_url(tenant, "/github/connection"), json={"token": token}, headers=tenant.headers
    )


async def pinned_project(
    client: httpx.AsyncClient, tenant: Tenant, token: str, **fields: object
) -> dict[str, object]:
    """A connected organization's project pinned to octo/demo."""
    assert (await connect(client, tenant, token)).status_code == 200
    body = {"name": "demo", "github_repo": "octo/demo", **fields}
    response = await client.post(org_url(tenant, "/projects"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())
