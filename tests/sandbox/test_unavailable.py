"""Without a usable bubblewrap nothing runs, not even unsandboxed; the error says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from genway.sandbox import (
    SandboxUnavailable,
    availability,
    run_sandboxed,
    sandbox_unavailable_reason,
)


async def test_missing_bwrap_raises(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))

    reason = sandbox_unavailable_reason()
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await run_sandboxed("touch ran", workdir=workdir)

    assert reason is not None and "install the Debian package bubblewrap" in reason
    assert not (workdir / "ran").exists()


async def test_unusable_bwrap_raises(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(availability, "bwrap_path", "/bin/false")

    with pytest.raises(SandboxUnavailable, match="cannot"):
        await run_sandboxed("touch ran", workdir=workdir)

    assert sandbox_unavailable_reason() is not None
    assert not (workdir / "ran").exists()
