"""Run untrusted shell commands in a bubblewrap sandbox (see docs/sandbox.md)."""

from genway.sandbox.availability import sandbox_unavailable_reason
from genway.sandbox.errors import SandboxUnavailable
from genway.sandbox.limits import SandboxLimits
from genway.sandbox.runner import CommandResult, run_sandboxed

__all__ = [
    "CommandResult",
    "SandboxLimits",
    "SandboxUnavailable",
    "run_sandboxed",
    "sandbox_unavailable_reason",
]
