"""Which files a workflow may make a shared ComfyUI backend read or write: default deny.

Every input of every node class a backend offers is classified from its `/object_info` spec:
- `upload`: a file picker (`image_upload`, `video_upload`, `audio_upload`, `file_upload`,
  `image_folder`, the webcam widget). It must name one of the organization's own uploads (or,
  on loaders of the output folder, its outputs); the worker stages that file for the job alone
  and rewrites the value to it.
- `model`: a choice among files of the backend's own lists (checkpoints, LoRAs, VAEs, ...):
  allowed as is when the value is one of the listed choices and, when it names a file or the
  input names a folder, one of the backend's model files (`GET /models/{folder}`), so lists of
  shared folders (latents, training folders) cannot be used to reach other tenants' files.
- `choice`: a plain option list (samplers, methods): a value that looks like a path is refused
  unless it is one of the options; anything else is ComfyUI's to check.
- `output_prefix`: where an output node saves; a relative name without `..`, rewritten into the
  job's own folder on the backend.
- `path`: any other input whose name says it is a path (file, path, folder, directory): refused.
- `connection`: typed inputs (IMAGE, MODEL, LOAD_3D, ...) fed by links; a literal is refused
  (that is how a 3D loader's widget names files).
- `text` and `value`: free text and numbers.

Values wrapped as `{"__value__": ...}` (which ComfyUI unwraps) are judged unwrapped; a link into
an `upload`, `model`, `output_prefix` or `path` input is refused, since its value could not be
checked. Custom nodes (`python_module` under `custom_nodes`) with any file-related input are
refused unless an administrator allow-lists them in `GENWAY_COMFYUI_NODE_POLICY`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload", "image_folder")
UPLOAD_TYPES = frozenset({"WEBCAM"})
PRIMITIVES = frozenset({"INT", "FLOAT", "BOOLEAN"})
ANNOTATIONS = (" [input]", " [output]", " [temp]")
CUSTOM_MODULE_PREFIX = "custom_nodes"
# Model folders whose files are not models a workflow may name.
NOT_MODEL_FOLDERS = frozenset({"custom_nodes"})
MAX_PREFIX_LENGTH = 200

_PATH_NAME = re.compile(
    r"(^|_)(files?|file_?names?|file_?paths?|paths?|folders?|dirs?|directory|directories)(_|$)",
    re.IGNORECASE,
)
_PREFIX_NAME = re.compile(r"(^|_)prefix$", re.IGNORECASE)
# A file's extension has a letter: `model.safetensors`, not `edm_playground_v2.5`.
_FILE_SUFFIX = re.compile(r"\.(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,12}$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9_\-. ()]+$")


class InputKind(StrEnum):
    UPLOAD = "upload"
    MODEL = "model"
    CHOICE = "choice"
    OUTPUT_PREFIX = "output_prefix"
    PATH = "path"
    CONNECTION = "connection"
    TEXT = "text"
    VALUE = "value"


FILE_KINDS = frozenset({InputKind.UPLOAD, InputKind.MODEL, InputKind.OUTPUT_PREFIX, InputKind.PATH})


@dataclass(frozen=True)
class InputSpec:
    """One input of a node class, classified."""

    name: str
    kind: InputKind
    options: frozenset[str] = frozenset()
    folder: str = "input"  # where an upload input reads from: "input" or "output"


@dataclass(frozen=True)
class NodeClass:
    name: str
    inputs: Mapping[str, InputSpec]
    custom: bool

    @property
    def file_related(self) -> bool:
        return any(spec.kind in FILE_KINDS for spec in self.inputs.values())


def names_file(option: str) -> bool:
    """Whether a combo's option is a file name (an extension, an absolute path, `..`, or one of
    ComfyUI's folder annotations), which makes its list a list of files."""
    return (
        option.startswith(("/", "\\", "~"))
        or ".." in option
        or option.endswith(("[input]", "[output]", "[temp]"))
        or bool(_FILE_SUFFIX.search(option))
    )


def looks_like_path(value: str) -> bool:
    """Whether a value could name a file or folder rather than pick an option."""
    return (
        names_file(value) or "/" in value or "\\" in value or (len(value) > 1 and value[1] == ":")
    )


def path_named(name: str) -> bool:
    """Whether an input's name says it holds a path (file, path, folder, directory)."""
    return bool(_PATH_NAME.search(name))


def _combo_options(spec: list[Any]) -> list[Any] | None:
    """The options of a combo input (old `[[...], {...}]` or new `["COMBO", {"options"}]`)."""
    kind = spec[0] if spec else None
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        options = extra.get("options")
        return options if isinstance(options, list) else []
    return None


def classify_input(name: str, spec: object) -> InputSpec:
    """How Genway treats one input, from its `/object_info` spec `[type, options]`."""
    raw = spec if isinstance(spec, list) else [spec]
    kind = raw[0] if raw else None
    extra: dict[str, Any] = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    options = _combo_options(raw)
    if options is not None:
        if any(extra.get(flag) for flag in UPLOAD_FLAGS):
            folder = "output" if extra.get("image_folder") == "output" else "input"
            return InputSpec(name, InputKind.UPLOAD, folder=folder)
        choices = frozenset(str(option) for option in options)
        file_like = (
            not choices or path_named(name) or any(looks_like_path(choice) for choice in choices)
        )
        return InputSpec(name, InputKind.MODEL if file_like else InputKind.CHOICE, choices)
    if kind in UPLOAD_TYPES:
        return InputSpec(name, InputKind.UPLOAD)
    if kind == "STRING":
        if _PREFIX_NAME.search(name):
            return InputSpec(name, InputKind.OUTPUT_PREFIX)
        if path_named(name):
            return InputSpec(name, InputKind.PATH)
        return InputSpec(name, InputKind.TEXT)
    if kind in PRIMITIVES:
        return InputSpec(name, InputKind.PATH if path_named(name) else InputKind.VALUE)
    return InputSpec(name, InputKind.CONNECTION)


def classify_node(name: str, info: Mapping[str, Any]) -> NodeClass:
    sections = info.get("input") or {}
    inputs: dict[str, InputSpec] = {}
    for section in ("required", "optional"):
        for input_name, spec in (sections.get(section) or {}).items():
            inputs[input_name] = classify_input(input_name, spec)
    module = str(info.get("python_module") or "")
    return NodeClass(name, inputs, custom=module.split(".")[0] == CUSTOM_MODULE_PREFIX)


@dataclass(frozen=True)
class NodePolicy:
    """An administrator's choices (`GENWAY_COMFYUI_NODE_POLICY`): node classes allowed as they
    are (custom nodes with file inputs; their path inputs go unchecked) and classes refused."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path | None) -> NodePolicy:
        """The policy in a JSON file `{"allow": [...], "deny": [...]}`; empty without a file.

        Raises ValueError naming the file and the problem."""
        if path is None:
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"ComfyUI node policy {path} is not readable JSON: {exc}") from exc
        if not isinstance(data, dict) or set(data) - {"allow", "deny"}:
            raise ValueError(f"ComfyUI node policy {path} must be an object with allow and deny")
        lists = {key: data.get(key, []) for key in ("allow", "deny")}
        for key, names in lists.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"ComfyUI node policy {path}: {key} must be a list of names")
        return cls(frozenset(lists["allow"]), frozenset(lists["deny"]))


@dataclass
class Catalogue:
    """A backend's node classes and model files, classified once."""

    object_info: Mapping[str, Any]
    model_files: frozenset[str]
    _classes: dict[str, NodeClass] = field(default_factory=dict, repr=False)

    def node(self, class_type: str) -> NodeClass | None:
        known = self._classes.get(class_type)
        if known is None:
            info = self.object_info.get(class_type)
            if not isinstance(info, Mapping):
                return None
            known = self._classes[class_type] = classify_node(class_type, info)
        return known

    def classes(self) -> Iterator[NodeClass]:
        for name in self.object_info:
            node = self.node(name)
            if node is not None:
                yield node


def model_files_of(listings: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The names a workflow may pick from `GET /models/{folder}` answers."""
    return frozenset(
        str(name)
        for folder, names in listings.items()
        if folder not in NOT_MODEL_FOLDERS
        for name in names
    )


@dataclass(frozen=True)
class FileReference:
    """An upload input: which node and input, and the value the client gave."""

    node_id: str
    input_name: str
    value: str
    folder: str  # "input" or "output": where the node reads from by default


@dataclass(frozen=True)
class PrefixReference:
    node_id: str
    input_name: str
    value: str


@dataclass
class Verdict:
    """What the policy found in a workflow: refusals per node (ComfyUI's `node_errors`) and the
    inputs to rewrite."""

    node_errors: dict[str, Any] = field(default_factory=dict)
    uploads: list[FileReference] = field(default_factory=list)
    prefixes: list[PrefixReference] = field(default_factory=list)

    def add(self, node_id: str, class_type: str, error: dict[str, Any]) -> None:
        entry = self.node_errors.setdefault(
            node_id, {"errors": [], "dependent_outputs": [], "class_type": class_type}
        )
        entry["errors"].append(error)

    def refuse(self, node_id: str, class_type: str, input_name: str, details: str) -> None:
        error = {
            "type": "value_not_allowed",
            "message": "Value not allowed: Genway keeps files on shared backends apart",
            "details": f"{input_name} - {details}" if input_name else details,
            "extra_info": {"input_name": input_name},
        }
        self.add(node_id, class_type, error)


def unwrap(value: object) -> object:
    """The value ComfyUI will use: `{"__value__": v}` is v."""
    while isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    return value


def is_link(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def prefix_problem(value: str) -> str | None:
    """Why an output prefix cannot be used (None: it can)."""
    if not value or len(value) > MAX_PREFIX_LENGTH:
        return f"must be 1 to {MAX_PREFIX_LENGTH} characters"
    if value.startswith(("/", "~")) or "\\" in value or (len(value) > 1 and value[1] == ":"):
        return "must be a relative name (no absolute path)"
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "must not contain '..', '.' or empty folder names"
    if not all(_PREFIX_PART.match(part) for part in parts):
        return "may contain letters, digits, spaces and ._()- only"
    return None


def check_workflow(
    workflow: Mapping[str, Mapping[str, Any]], catalogue: Catalogue, policy: NodePolicy
) -> Verdict:
    """Judge every input of every node. Node classes the catalogue lacks are left to the
    caller's own check (ComfyUI refuses them)."""
    verdict = Verdict()
    for node_id, node in workflow.items():
        class_type = str(node.get("class_type", ""))
        if class_type in policy.deny:
            verdict.refuse(node_id, class_type, "", f"node class {class_type} is not allowed here")
            continue
        known = catalogue.node(class_type)
        if known is None:
            continue
        trusted = class_type in policy.allow
        if known.custom and known.file_related and not trusted:
            verdict.refuse(
                node_id,
                class_type,
                "",
                f"custom node {class_type} takes file inputs; an administrator must allow it "
                "(GENWAY_COMFYUI_NODE_POLICY)",
            )
            continue
        for name, raw in (node.get("inputs") or {}).items():
            _check_input(verdict, catalogue, node_id, class_type, known, name, raw, trusted)
    return verdict


def _check_input(
    verdict: Verdict,
    catalogue: Catalogue,
    node_id: str,
    class_type: str,
    known: NodeClass,
    name: str,
    raw: object,
    trusted: bool,
) -> None:
    spec = known.inputs.get(name)
    if is_link(raw):
        if spec is not None and spec.kind in FILE_KINDS and not trusted:
            verdict.refuse(node_id, class_type, name, "must be a value, not a link")
        return
    value = unwrap(raw)
    if spec is None:
        # An input the class does not declare: harmless unless it names a path.
        if isinstance(value, str) and looks_like_path(value) and not trusted:
            verdict.refuse(node_id, class_type, name, "must not name a file")
        return
    problem = _value_problem(catalogue, spec, value, trusted)
    if problem is not None:
        verdict.refuse(node_id, class_type, name, problem)
    elif spec.kind == InputKind.UPLOAD and isinstance(value, str):
        verdict.uploads.append(FileReference(node_id, name, value, spec.folder))
    elif spec.kind == InputKind.OUTPUT_PREFIX and isinstance(value, str):
        verdict.prefixes.append(PrefixReference(node_id, name, value))


def _value_problem(
    catalogue: Catalogue, spec: InputSpec, value: object, trusted: bool
) -> str | None:
    kind = spec.kind
    if kind == InputKind.UPLOAD:
        return None if isinstance(value, str) and value else "must name an uploaded file"
    if kind == InputKind.OUTPUT_PREFIX:
        return prefix_problem(value) if isinstance(value, str) else "must be text"
    if kind == InputKind.PATH:
        if trusted or value in ("", None):
            return None
        return "names a path on the backend; Genway does not allow it"
    if kind == InputKind.CONNECTION:
        return None if trusted else "must be connected to another node's output"
    if kind == InputKind.MODEL:
        if trusted:
            return None
        text = str(value) if isinstance(value, str | int | float) else None
        if text is None or text not in spec.options:
            return "is not one of the backend's choices"
        if (looks_like_path(text) or path_named(spec.name)) and (text not in catalogue.model_files):
            return "is not one of the backend's model files"
        return None
    if kind == InputKind.CHOICE:
        if isinstance(value, str) and looks_like_path(value) and value not in spec.options:
            return "is not one of the choices"
        return None
    return None


def strip_annotation(value: str) -> tuple[str, str | None]:
    """`photo.png [output]` is ("photo.png", "output"); a plain name has no folder."""
    for annotation in ANNOTATIONS:
        if value.endswith(annotation):
            return value[: -len(annotation)], annotation.strip(" []")
    return value, None
