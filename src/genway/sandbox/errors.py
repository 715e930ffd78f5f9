"""The one error of the sandbox: commands are never run without it."""

from __future__ import annotations


class SandboxUnavailable(Exception):
    """bubblewrap or the pids cgroup is missing or unusable; the message says how to fix it."""
