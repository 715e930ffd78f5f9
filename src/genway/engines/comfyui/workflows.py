"""API-format ComfyUI workflows: the txt2img template rendered from checked parameters, the
structural check of workflows clients send.

An API-format workflow is `{node_id: {"class_type": str, "inputs": {name: value | [node_id,
output_index]}}}`; ComfyUI itself checks classes and input values when it is submitted.
"""

from __future__ import annotations

import copy
import functools
import json
import secrets
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genway.errors import InvalidInput

Workflow = dict[str, dict[str, Any]]

DEFAULT_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
MAX_SEED = 2**64 - 1
# Random seeds stay below 2**53 so that JavaScript clients show them exactly.
RANDOM_SEED_LIMIT = 2**53
MAX_NODES = 1000


def random_seed() -> int:
    return secrets.randbelow(RANDOM_SEED_LIMIT)


class InvalidWorkflow(InvalidInput):
    """The workflow is not a well-formed API-format workflow (422, with every problem found)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Invalid workflow: " + "; ".join(problems[:5]), extra={"problems": problems}
        )


class Txt2ImgParams(BaseModel):
    """What `comfy.generate` takes. A missing or `"random"` seed becomes a random one."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000)
    negative_prompt: str = Field(default="", max_length=4000)
    width: int = Field(default=512, ge=64, le=2048, multiple_of=8)
    height: int = Field(default=512, ge=64, le=2048, multiple_of=8)
    steps: int = Field(default=20, ge=1, le=150)
    seed: int = Field(default_factory=random_seed, ge=0, le=MAX_SEED)
    checkpoint: str = Field(default=DEFAULT_CHECKPOINT, min_length=1, max_length=255)

    @field_validator("seed", mode="before")
    @classmethod
    def _draw_seed(cls, value: object) -> object:
        return random_seed() if value is None or value == "random" else value

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_name(cls, value: str) -> str:
        # A checkpoint is a name in ComfyUI's models folder, never a path out of it.
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "\\")) or ".." in parts or not value.isprintable():
            raise ValueError("checkpoint must be a file name inside the checkpoints folder")
        return value


@functools.cache
def _template_text(name: str) -> str:
    package = resources.files("genway.engines.comfyui")
    return package.joinpath("templates", f"{name}.json").read_text(encoding="utf-8")


def load_template(name: str) -> Workflow:
    """A fresh copy of a bundled template (`templates/{name}.json`)."""
    return cast(Workflow, json.loads(_template_text(name)))


def load_txt2img_template(path: Path | None = None) -> Workflow:
    """The txt2img template at `path` (default: the bundled one), checked to be renderable.

    Raises ValueError naming the file and the problem."""
    if path is None:
        return load_template("txt2img")
    try:
        workflow = validate_api_workflow(json.loads(path.read_text(encoding="utf-8")))
        render_txt2img(Txt2ImgParams(prompt="template check", seed=0), workflow)
    except (OSError, ValueError, KeyError, IndexError, TypeError, InvalidWorkflow) as exc:
        raise ValueError(f"ComfyUI txt2img template {path} is not usable: {exc}") from exc
    return workflow


def render_txt2img(params: Txt2ImgParams, template: Workflow | None = None) -> Workflow:
    """The txt2img template (bundled unless given) with `params` filled in, found through
    the KSampler's links."""
    workflow = copy.deepcopy(template) if template is not None else load_template("txt2img")
    sampler = _single(workflow, "KSampler")["inputs"]
    sampler["seed"] = params.seed
    sampler["steps"] = params.steps
    workflow[sampler["positive"][0]]["inputs"]["text"] = params.prompt
    workflow[sampler["negative"][0]]["inputs"]["text"] = params.negative_prompt
    latent = workflow[sampler["latent_image"][0]]["inputs"]
    latent["width"], latent["height"] = params.width, params.height
    workflow[sampler["model"][0]]["inputs"]["ckpt_name"] = params.checkpoint
    return workflow


def _single(workflow: Workflow, class_type: str) -> dict[str, Any]:
    nodes = [node for node in workflow.values() if node["class_type"] == class_type]
    if len(nodes) != 1:
        raise ValueError(f"template must have exactly one {class_type}, has {len(nodes)}")
    return nodes[0]


def validate_api_workflow(workflow: object, *, max_nodes: int = MAX_NODES) -> Workflow:
    """The workflow, typed, if it is structurally an API-format workflow.

    Raises InvalidWorkflow listing every problem (UI-format exports are named as such).
    """
    problems = list(_structure_problems(workflow, max_nodes))
    if problems:
        raise InvalidWorkflow(problems)
    return cast(Workflow, workflow)


def _structure_problems(workflow: object, max_nodes: int) -> Iterator[str]:
    if not isinstance(workflow, dict):
        yield "a workflow must be an object mapping node ids to nodes"
        return
    if "nodes" in workflow and "links" in workflow:
        yield "this is ComfyUI's UI format; export the workflow with 'Save (API Format)'"
        return
    if not workflow:
        yield "the workflow has no nodes"
        return
    if len(workflow) > max_nodes:
        yield f"the workflow has {len(workflow)} nodes; at most {max_nodes} are allowed"
        return
    problems = [
        problem
        for node_id, node in workflow.items()
        for problem in _node_problems(workflow, node_id, node)
    ]
    yield from problems
    if not problems:
        yield from _cycle_problems(cast(Workflow, workflow))


def _node_problems(workflow: dict[Any, Any], node_id: object, node: object) -> Iterator[str]:
    where = f"node {node_id!r}"
    if not isinstance(node_id, str):
        yield f"{where}: node ids must be strings"
    if not isinstance(node, dict):
        yield f"{where} must be an object with class_type and inputs"
        return
    class_type = node.get("class_type")
    if not isinstance(class_type, str) or not class_type.strip():
        yield f"{where}: class_type must be a non-empty string"
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        yield f"{where}: inputs must be an object"
        return
    for name, value in inputs.items():
        if not isinstance(value, list):
            continue
        if not _is_link(value):
            yield f"{where}: input {name!r} must be a link [node_id, output_index]"
        elif value[0] not in workflow:
            yield f"{where}: input {name!r} links to missing node {value[0]!r}"


def _is_link(value: list[Any]) -> bool:
    if len(value) != 2 or not isinstance(value[0], str):
        return False
    index = value[1]
    return isinstance(index, int) and not isinstance(index, bool) and index >= 0


def _links(node: Mapping[str, Any]) -> Iterator[str]:
    for value in node["inputs"].values():
        if isinstance(value, list):
            yield value[0]


def _cycle_problems(workflow: Workflow) -> Iterator[str]:
    done: set[str] = set()
    for start in workflow:
        if start in done:
            continue
        # Iterative depth-first search: a node met again while still on the path closes a cycle.
        path: list[tuple[str, Iterator[str]]] = [(start, _links(workflow[start]))]
        on_path = {start}
        while path:
            node_id, pending = path[-1]
            nxt = next(pending, None)
            if nxt is None:
                path.pop()
                on_path.discard(node_id)
                done.add(node_id)
            elif nxt in on_path:
                yield f"node {nxt!r} depends on itself through its links"
                return
            elif nxt not in done:
                path.append((nxt, _links(workflow[nxt])))
                on_path.add(nxt)
