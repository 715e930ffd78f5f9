"""The real ComfyUI in `../shared/comfyui` (or `GENWAY_TEST_COMFYUI_DIR`), started once per test
session on a free loopback port, with folders of its own and one test custom node package.

It is started like `start.sh` does, plus `--base-directory` so that its models and custom
nodes folders are the session's own (the shared copy is read-only and has no `custom_nodes`).
Absent folder: the tests that need it are skipped, saying so (in CI they fail instead).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMFYUI_DIR = Path(os.environ.get("GENWAY_TEST_COMFYUI_DIR") or REPO.parent / "shared" / "comfyui")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
START_TIMEOUT_S = 180.0

# A deployment's own nodes: one reads any file it is given, one touches no file.
PROBE_NODES = """
class GenwayProbeReadFile:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "testing"
    OUTPUT_NODE = True

    def run(self, path):
        with open(path, "rb") as handle:
            text = handle.read(200).decode("utf-8", "replace")
        return {"ui": {"text": [text]}, "result": (text,)}


class GenwayProbeUpper:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "a"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, text):
        return (text.upper(),)


NODE_CLASS_MAPPINGS = {
    "GenwayProbeReadFile": GenwayProbeReadFile,
    "GenwayProbeUpper": GenwayProbeUpper,
}
"""


@dataclass(frozen=True)
class RealComfyUI:
    url: str
    base: Path

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def input_dir(self) -> Path:
        return self.base / "output" / "input"

    def files_under(self, *folders: Path) -> dict[Path, int]:
        """Every file below the folders, with its size."""
        return {
            path: path.stat().st_size
            for folder in folders
            for path in folder.rglob("*")
            if path.is_file()
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/system_stats", timeout=1):
            return True
    except OSError:
        return False


def require_comfyui_dir() -> Path:
    if (COMFYUI_DIR / "start.sh").is_file():
        return COMFYUI_DIR
    reason = f"the real ComfyUI is not at {COMFYUI_DIR} (set GENWAY_TEST_COMFYUI_DIR)"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


class ComfyUIUnavailable(RuntimeError):
    """The real ComfyUI could not be set up or started (the message says why)."""


@contextlib.contextmanager
def launch_comfyui(
    comfyui_dir: Path, base: Path, custom_nodes: dict[str, str] | None = None
) -> Iterator[RealComfyUI]:
    """Start the server from `comfyui_dir` with its folders in `base` (and each custom node
    package `name -> __init__.py text`); stopped when the block ends. Raises
    ComfyUIUnavailable."""
    setup = subprocess.run(
        [str(comfyui_dir / "setup.sh")], capture_output=True, text=True, check=False, timeout=900
    )
    if setup.returncode != 0:
        raise ComfyUIUnavailable(f"ComfyUI setup failed: {setup.stderr[-2000:]}")
    python = setup.stdout.strip().splitlines()[-1]
    output = base / "output"
    for folder in (base / "custom_nodes", base / "models", base / "user"):
        folder.mkdir(parents=True, exist_ok=True)
    for folder in (output / "input", output / "temp"):
        folder.mkdir(parents=True, exist_ok=True)
    for name, code in (custom_nodes or {}).items():
        (base / "custom_nodes" / name).mkdir(exist_ok=True)
        (base / "custom_nodes" / name / "__init__.py").write_text(code)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--base-directory", str(base), "--output-directory", str(output),
        "--input-directory", str(output / "input"), "--temp-directory", str(output / "temp"),
        "--user-directory", str(base / "user"), "--disable-auto-launch",
    ]  # fmt: skip
    with (base / "comfyui.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=comfyui_dir / "src", stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (base / "comfyui.log").read_text(errors="replace")[-3000:]
                    raise ComfyUIUnavailable(f"the real ComfyUI did not start:\n{tail}")
                time.sleep(0.25)
            yield RealComfyUI(url, base)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_real_comfyui(base: Path) -> Iterator[RealComfyUI]:
    """For a pytest fixture: the server with the test custom nodes (skipped or failed, as the
    environment says, when it cannot run)."""
    here = require_comfyui_dir()
    try:
        with launch_comfyui(here, base, {"genway_probe": PROBE_NODES}) as server:
            yield server
    except ComfyUIUnavailable as exc:
        pytest.fail(str(exc))
