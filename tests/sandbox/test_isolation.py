"""What a sandboxed command can see and change: only the worktree, nothing of the host's secrets."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from genway.sandbox import run_sandboxed

pytestmark = pytest.mark.usefixtures("sandbox")


async def test_only_the_worktree_is_writable(workdir: Path) -> None:
    sibling = workdir.parent / "sibling"
    sibling.mkdir()
    name = f"genway-sandbox-probe-{uuid.uuid4().hex}"
    targets = ["/etc", "/usr", "/usr/local", "/bin", str(Path.home()), str(sibling), "/"]
    paths = " ".join(f"{t.rstrip('/')}/{name}" for t in targets)
    command = (
        f'for p in {paths}; do if (echo x > "$p") 2>/dev/null; then echo "wrote $p"; fi; done; '
        f"echo hidden > /tmp/{name}; echo kept > inside.txt"
    )

    result = await run_sandboxed(command, workdir=workdir)

    assert result.exit_code == 0, result.output
    assert "wrote" not in result.output
    for target in [*targets, "/tmp"]:
        assert not Path(target, name).exists()
    assert list(sibling.iterdir()) == []
    assert (workdir / "inside.txt").read_text() == "kept\n"


async def test_host_secrets_are_not_readable(workdir: Path, tmp_path: Path) -> None:
    # One stand-in data dir under the host's /tmp, one where no tmpfs hides it.
    with tempfile.TemporaryDirectory(dir="/var/tmp") as var_dir:
        data_dirs = [tmp_path / "data", Path(var_dir)]
        data_dirs[0].mkdir()
        for data_dir in data_dirs:
            (data_dir / "secret.key").write_text("host-secret-value")
        reads = "; ".join(f"cat {d}/secret.key; ls {d}" for d in data_dirs)

        result = await run_sandboxed(
            f"({reads}) 2>/dev/null; test -e /etc/shadow && echo shadow; "
            f"test -e {Path.cwd()}/pyproject.toml && echo repo; echo listing; ls -A /root",
            workdir=workdir,
        )

    assert "host-secret-value" not in result.output
    assert "secret.key" not in result.output
    assert "shadow\n" not in result.output
    assert "repo\n" not in result.output
    listing = set(result.output.split("listing\n", 1)[1].split())
    python = Path(sys.base_prefix).resolve()
    allowed = {python.relative_to("/root").parts[0]} if python.is_relative_to("/root") else set()
    assert listing <= allowed


async def test_private_tmp_and_namespaces(workdir: Path) -> None:
    visible = Path("/tmp", f"genway-host-file-{uuid.uuid4().hex}")
    visible.write_text("host")
    try:
        result = await run_sandboxed(
            f"test -e {visible} && echo host-tmp-visible; "
            "for ns in pid ipc uts net mnt; do echo $ns $(readlink /proc/self/ns/$ns); done; "
            "echo processes $(ls /proc | grep -c '^[0-9]'); hostname; "
            "grep CapEff /proc/self/status",
            workdir=workdir,
        )
    finally:
        visible.unlink()

    assert "host-tmp-visible" not in result.output
    lines = dict(line.split(" ", 1) for line in result.output.splitlines() if " " in line)
    for ns in ("pid", "ipc", "uts", "net", "mnt"):
        assert lines[ns] != os.readlink(f"/proc/self/ns/{ns}")
    assert int(lines["processes"]) < 8
    assert "genway-sandbox" in result.output
    assert "CapEff:\t0000000000000000" in result.output


async def test_symlinks_do_not_reach_the_host(workdir: Path, tmp_path: Path) -> None:
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("original")
    passwd = Path("/etc/passwd").read_bytes()

    result = await run_sandboxed(
        f"ln -s {hostfile} link; echo x > link; "
        "ln -s /etc/passwd passwd-link; if (: >> passwd-link) 2>/dev/null; then echo writable; fi",
        workdir=workdir,
    )

    assert hostfile.read_text() == "original"
    assert "writable" not in result.output
    assert Path("/etc/passwd").read_bytes() == passwd


async def test_environment_is_minimal(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENWAY_SECRET_KEY", "host-secret-value")

    result = await run_sandboxed(
        'echo "[$GENWAY_SECRET_KEY] [$PROJECT_TOKEN]"; env',
        workdir=workdir,
        env={"PROJECT_TOKEN": "project-value"},
    )

    assert result.output.startswith("[] [project-value]\n")
    assert "host-secret-value" not in result.output


async def test_exit_code_and_python_pass_through(workdir: Path) -> None:
    result = await run_sandboxed(
        "python3 -c 'import sys; print(sys.version_info[:2])'; python -c 'print(1)'; exit 3",
        workdir=workdir,
    )

    assert result.exit_code == 3
    assert result.output == f"{tuple(sys.version_info[:2])}\n1\n"
    assert (result.killed, result.timed_out, result.truncated) == (None, False, False)


@pytest.mark.parametrize("bad", ["missing", "a-file", "/"])
async def test_workdir_must_be_a_safe_directory(workdir: Path, bad: str) -> None:
    (workdir / "a-file").write_text("")
    target = Path(bad) if bad == "/" else workdir / bad

    with pytest.raises(ValueError):
        await run_sandboxed(f"touch {workdir}/ran", workdir=target)

    assert not (workdir / "ran").exists()
