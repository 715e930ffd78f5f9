"""What one sandboxed command may use: time, CPU, memory, processes, output, network."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxLimits:
    """Per-command limits; the defaults suit a test run of a small project.

    `max_processes` counts tasks (threads as well as processes), because the pids cgroup that
    enforces it does. `network` is a per-project opt-in: when true the command shares the
    host's network, including services listening on 127.0.0.1. `extra_ro_paths` are absolute
    host paths mounted read-only at the same place (a toolchain, a shared cache); those that do
    not exist are skipped.
    """

    timeout_s: float = 120.0
    cpu_s: int = 120
    memory_bytes: int = 1 << 30
    max_processes: int = 128
    output_bytes: int = 64 * 1024
    network: bool = False
    extra_ro_paths: tuple[str, ...] = ()
