"""How the fake ComfyUI checks and orders a submitted prompt (API-format workflow).

`validate_prompt` reproduces ComfyUI's submit-time answers: `invalid_prompt` for a node without
`class_type` or of an unknown class (with empty `node_errors`), `prompt_no_outputs`, and
`prompt_outputs_failed_validation` with per-node `errors`, `dependent_outputs` and `class_type`.
Outputs that fail while others pass are dropped and reported, as the real server does.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.comfyui_nodes import Folders, NodeSpec

Catalogue = dict[str, NodeSpec]
Verdict = tuple[bool, list[dict[str, Any]]]


@dataclass
class QueueItem:
    """A queued prompt: `[number, prompt_id, prompt, extra_data, outputs]` on the wire."""

    number: int | float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class Validation:
    ok: bool
    error: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)


def problem(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    """An error object in ComfyUI's `{type, message, details, extra_info}` shape."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def validate_prompt(prompt: Any, catalogue: Catalogue, folders: Folders) -> Validation:
    """Check a prompt as `POST /prompt` does; on success `outputs` are the nodes to execute."""
    if not isinstance(prompt, dict):
        return Validation(False, problem("invalid_prompt", "Prompt must be an object"))
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            message = "Cannot execute because a node is missing the class_type property."
            return Validation(False, problem("invalid_prompt", message, f"Node ID '#{node_id}'"))
        spec = catalogue.get(node["class_type"])
        if spec is None:
            message = f"Cannot execute because node {node['class_type']} does not exist."
            return Validation(False, problem("invalid_prompt", message, f"Node ID '#{node_id}'"))
        if spec.output_node:
            outputs.append(node_id)
    if not outputs:
        return Validation(False, problem("prompt_no_outputs", "Prompt has no outputs"))

    checker = _Checker(prompt, catalogue, folders)
    good: list[str] = []
    node_errors: dict[str, Any] = {}
    for output in sorted(outputs):
        if checker.check_output(output):
            good.append(output)
            continue
        for node_id, (_ok, reasons) in checker.validated.items():
            if reasons:
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(output)
    if not good:
        failed = problem("prompt_outputs_failed_validation", "Prompt outputs failed validation")
        return Validation(False, failed, [], node_errors)
    return Validation(True, None, good, node_errors)


class _Checker:
    def __init__(self, prompt: dict[str, Any], catalogue: Catalogue, folders: Folders) -> None:
        self.prompt, self.catalogue, self.folders = prompt, catalogue, folders
        self.validated: dict[str, Verdict] = {}

    def check_output(self, node_id: str) -> bool:
        try:
            return self.check(node_id)[0]
        except Exception as exc:
            reason = problem(
                "exception_during_validation",
                "Exception when validating node",
                str(exc),
                exception_type=type(exc).__name__,
                traceback=traceback.format_tb(exc.__traceback__),
            )
            self.validated[node_id] = (False, [reason])
            return False

    def check(self, node_id: str) -> Verdict:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        spec = self.catalogue[node["class_type"]]
        inputs = node.setdefault("inputs", {})
        errors: list[dict[str, Any]] = []
        valid = True
        for name, config in spec.required(self.folders).items():
            if name not in inputs:
                errors.append(
                    problem(
                        "required_input_missing", "Required input is missing", name, input_name=name
                    )
                )
            elif isinstance(inputs[name], list):
                valid = self._check_link(name, config, inputs[name], errors) and valid
            else:
                self._check_value(spec, name, config, inputs, errors)
        verdict: Verdict = (not errors and valid, errors)
        self.validated[node_id] = verdict
        return verdict

    def _check_link(
        self, name: str, config: list[Any], link: list[Any], errors: list[dict[str, Any]]
    ) -> bool:
        if len(link) != 2:
            message = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            errors.append(
                problem(
                    "bad_linked_input",
                    message,
                    name,
                    input_name=name,
                    input_config=config,
                    received_value=link,
                )
            )
            return True
        source = link[0]
        # A link to a missing node or slot raises here, as in ComfyUI, and is reported by the
        # caller as an exception during validation.
        received = self.catalogue[self.prompt[source]["class_type"]].returns[link[1]]
        if received != config[0]:
            errors.append(
                problem(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, {received} != {config[0]}",
                    input_name=name,
                    input_config=config,
                    received_type=received,
                    linked_node=link,
                )
            )
            return True
        try:
            return self.check(source)[0]
        except Exception as exc:
            reason = problem(
                "exception_during_inner_validation",
                "Exception when validating inner node",
                str(exc),
                input_name=name,
                input_config=config,
                exception_message=str(exc),
                exception_type=type(exc).__name__,
                linked_node=link,
            )
            self.validated[source] = (False, [reason])
            return False

    def _check_value(
        self,
        spec: NodeSpec,
        name: str,
        config: list[Any],
        inputs: dict[str, Any],
        errors: list[dict[str, Any]],
    ) -> None:
        kind, value = config[0], inputs[name]
        converters = {"INT": int, "FLOAT": float, "STRING": str}
        if isinstance(kind, str) and kind in converters:
            try:
                value = inputs[name] = converters[kind](value)
            except Exception as exc:
                errors.append(
                    problem(
                        "invalid_input_type",
                        f"Failed to convert an input value to a {kind} value",
                        f"{name}, {value}, {exc}",
                        input_name=name,
                        input_config=config,
                        received_value=value,
                        exception_message=str(exc),
                    )
                )
                return
        bounds = config[1] if len(config) > 1 else {}
        if "min" in bounds and value < bounds["min"]:
            errors.append(
                problem(
                    "value_smaller_than_min",
                    f"Value {value} smaller than min of {bounds['min']}",
                    name,
                    input_name=name,
                    input_config=config,
                    received_value=value,
                )
            )
        elif "max" in bounds and value > bounds["max"]:
            errors.append(
                problem(
                    "value_bigger_than_max",
                    f"Value {value} bigger than max of {bounds['max']}",
                    name,
                    input_name=name,
                    input_config=config,
                    received_value=value,
                )
            )
        elif spec.check is not None:
            verdict = spec.check(inputs, self.folders)
            if verdict is not True:
                details = name if verdict is False else f"{name} - {verdict}"
                errors.append(
                    problem(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        details,
                        input_name=name,
                    )
                )
        elif isinstance(kind, list) and value not in kind:
            listed = str(kind) if len(kind) <= 20 else f"(list of length {len(kind)})"
            errors.append(
                problem(
                    "value_not_in_list",
                    "Value not in list",
                    f"{name}: '{value}' not in {listed}",
                    input_name=name,
                    input_config=config if len(kind) <= 20 else None,
                    received_value=value,
                )
            )


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """Nodes the outputs need, each after the nodes it links from (depth first)."""
    order: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in order:
            return
        for value in prompt[node_id].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2:
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


def signature(prompt: dict[str, Any], node_id: str, catalogue: Catalogue, folders: Folders) -> str:
    """A cache key for a node: its class, literal inputs, linked nodes' keys and file hashes."""
    node = prompt[node_id]
    spec = catalogue[node["class_type"]]
    parts: dict[str, Any] = {"class_type": node["class_type"]}
    for name, value in sorted(node.get("inputs", {}).items()):
        if isinstance(value, list) and len(value) == 2:
            parts[name] = [signature(prompt, value[0], catalogue, folders), value[1]]
        else:
            parts[name] = value
    if spec.changed is not None:
        parts["_changed"] = spec.changed(node["inputs"], folders)
    return json.dumps(parts, sort_keys=True, default=str)
