"""Pinned npm packages the fake reads GitHub's published descriptions from.

`@octokit/openapi` carries GitHub's OpenAPI description of the REST API and
`@octokit/webhooks-examples` real webhook payloads. Each is fetched once with `npm pack` into
`~/.cache/genway-tests/npm/` (or `$GENWAY_TEST_NPM_CACHE`) and only the file the fake needs is
kept. `NpmUnavailable` says why a package could not be had (no npm, no registry).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

OPENAPI_PACKAGE = "@octokit/openapi"
OPENAPI_VERSION = "23.0.2"
OPENAPI_MEMBER = "package/generated/api.github.com.json"

EXAMPLES_PACKAGE = "@octokit/webhooks-examples"
EXAMPLES_VERSION = "7.6.1"
EXAMPLES_MEMBER = "package/api.github.com/index.json"

_lock = threading.Lock()


class NpmUnavailable(RuntimeError):
    """A pinned npm package is neither cached nor obtainable from the registry."""


def cache_dir() -> Path:
    """Where downloaded package files live (outside the repository)."""
    configured = os.environ.get("GENWAY_TEST_NPM_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "genway-tests" / "npm"


def openapi_description() -> Path:
    """The api.github.com OpenAPI 3.0 description (JSON) of the pinned `@octokit/openapi`."""
    return _package_file(OPENAPI_PACKAGE, OPENAPI_VERSION, OPENAPI_MEMBER)


def webhook_examples_file() -> Path:
    """The api.github.com webhook definitions (JSON) of the pinned `@octokit/webhooks-examples`."""
    return _package_file(EXAMPLES_PACKAGE, EXAMPLES_VERSION, EXAMPLES_MEMBER)


def _package_file(package: str, version: str, member: str) -> Path:
    slug = package.lstrip("@").replace("/", "-")
    target = cache_dir() / f"{slug}-{version}" / Path(member).name
    if target.exists():
        return target
    with _lock:
        if not target.exists():
            _download(f"{package}@{version}", member, target)
    return target


def _download(spec: str, member: str, target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailable(f"npm is not installed, so {spec} cannot be fetched")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        try:
            done = subprocess.run(
                [npm, "pack", spec, "--silent", "--pack-destination", scratch],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise NpmUnavailable(f"`npm pack {spec}` failed: {error}") from error
        tarballs = list(Path(scratch).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise NpmUnavailable(f"`npm pack {spec}` failed: {done.stderr.strip()[-500:]}")
        with tarfile.open(tarballs[0], "r:gz") as archive:
            source = archive.extractfile(member)
            if source is None:
                raise NpmUnavailable(f"{spec} has no {member}")
            partial = Path(scratch) / "partial"
            with source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
        os.replace(partial, target)
