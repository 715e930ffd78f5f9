"""Executors are plug-ins registered by job kind: `async def run(job, ctx) -> dict`."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from genway.errors import InvalidInput

if TYPE_CHECKING:
    from genway.jobs.models import Job
    from genway.worker.context import JobContext

Run = Callable[["Job", "JobContext"], Awaitable[dict[str, Any] | None]]

BUILTIN_MODULES = (
    "genway.executors.diagnostic",
    "genway.agents.executors",
    "genway.promode.executors",
    "genway.engines.comfyui.executors",
    "genway.validation.runner",
)


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str
    run: Run
    input_model: type[BaseModel] | None
    default_timeout_s: float
    description: str


_REGISTRY: dict[str, ExecutorSpec] = {}


def executor(
    kind: str,
    *,
    input_model: type[BaseModel] | None = None,
    default_timeout_s: float = 300.0,
    description: str = "",
) -> Callable[[Run], Run]:
    """Register `run` as the executor of `kind`."""

    def register(run: Run) -> Run:
        _REGISTRY[kind] = ExecutorSpec(kind, run, input_model, default_timeout_s, description)
        return run

    return register


def load_executors(extra_modules: Iterable[str] = ()) -> None:
    """Import the built-in executors and any configured plug-in modules."""
    for module in (*BUILTIN_MODULES, *extra_modules):
        importlib.import_module(module)


def get_executor(kind: str) -> ExecutorSpec | None:
    return _REGISTRY.get(kind)


def known_kinds() -> list[str]:
    return sorted(_REGISTRY)


def validate_job_input(kind: str, data: dict[str, Any]) -> tuple[ExecutorSpec, dict[str, Any]]:
    """The executor for `kind` and the input normalized by its model. Raises InvalidInput."""
    spec = _REGISTRY.get(kind)
    if spec is None:
        raise InvalidInput(f"Unknown job kind '{kind}'; known kinds: {', '.join(known_kinds())}")
    if spec.input_model is None:
        return spec, data
    try:
        model = spec.input_model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"type": e["type"], "loc": ["body", "input", *e["loc"]], "msg": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidInput(errors) from exc
    return spec, model.model_dump(mode="json")
