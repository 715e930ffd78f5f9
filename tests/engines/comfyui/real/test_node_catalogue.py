"""Every node class of the real backend's `/object_info`: each input that can name a file is
classified as such, and the policy refuses every way of pointing it outside the job."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from genway.engines.comfyui.node_policy import (
    FILE_KINDS,
    Catalogue,
    InputKind,
    NodePolicy,
    check_workflow,
    model_files_of,
)
from tests.real_comfyui import RealComfyUI

pytestmark = pytest.mark.slow

# Judged here independently of Genway's classifier: what could make a node touch a file.
FILEISH_NAME = re.compile(r"file|path|folder|dir|prefix|image$|latent$|_name\d?$|^name$", re.I)
FILEISH_VALUE = re.compile(r"^[\\/]|\.\.|\.[a-z]\w{0,11}$", re.I)
ATTACKS: list[Any] = [
    "../../etc/passwd",
    "/etc/passwd",
    {"__value__": "../x.png"},
    "x.png [output]",
    ["9", 0],
]


@pytest.fixture(scope="module")
def catalogue(real_comfyui: RealComfyUI) -> Catalogue:
    with httpx.Client(base_url=real_comfyui.url, timeout=30) as http:
        info = http.get("/object_info").json()
        folders = http.get("/models").json()
        models = {folder: http.get(f"/models/{folder}").json() for folder in folders}
    return Catalogue(info, model_files_of(models))


def inputs_of(info: dict[str, Any]) -> dict[str, Any]:
    sections = info.get("input") or {}
    return {**(sections.get("required") or {}), **(sections.get("optional") or {})}


def fileish(name: str, spec: list[Any]) -> bool:
    kind = spec[0]
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    options = kind if isinstance(kind, list) else extra.get("options", [])
    if any(key.endswith(("_upload", "_folder")) for key in extra):
        return True
    if isinstance(kind, list) or kind == "COMBO":
        return not options or any(FILEISH_VALUE.search(str(o)) for o in options)
    if kind in ("INT", "FLOAT", "BOOLEAN"):
        return False
    if kind == "STRING":
        return bool(FILEISH_NAME.search(name)) and not re.search(r"text|prompt", name)
    return True  # a typed input: only links may feed it


def test_the_backend_has_the_nodes_of_the_issue(catalogue: Catalogue):
    for name in ("LoadImage", "LoadImageOutput", "LoadImageSetFromFolderNode", "SaveImage"):
        assert catalogue.node(name) is not None
    assert len(list(catalogue.classes())) > 400


def test_every_input_that_can_name_a_file_is_classified(catalogue: Catalogue):
    unclassified = []
    for node in catalogue.classes():
        for name, spec in inputs_of(catalogue.object_info[node.name]).items():
            kind = node.inputs[name].kind
            if fileish(name, spec) and kind not in (*FILE_KINDS, InputKind.CONNECTION):
                unclassified.append(f"{node.name}.{name}: {kind}")
    assert unclassified == []


@pytest.mark.parametrize(
    ("node", "name", "kind"),
    [
        ("LoadImage", "image", InputKind.UPLOAD),
        ("LoadImageMask", "image", InputKind.UPLOAD),
        ("LoadImageOutput", "image", InputKind.UPLOAD),
        ("LoadVideo", "file", InputKind.UPLOAD),
        ("Load3D", "model_file", InputKind.UPLOAD),
        ("Load3D", "image", InputKind.CONNECTION),
        ("LoadLatent", "latent", InputKind.MODEL),
        ("LoadImageSetFromFolderNode", "folder", InputKind.MODEL),
        ("LoadImageTextSetFromFolderNode", "folder", InputKind.MODEL),
        ("CheckpointLoaderSimple", "ckpt_name", InputKind.MODEL),
        ("DiffusersLoader", "model_path", InputKind.MODEL),
        ("SaveImage", "filename_prefix", InputKind.OUTPUT_PREFIX),
        ("SaveLoRANode", "prefix", InputKind.OUTPUT_PREFIX),
        ("Preview3D", "model_file", InputKind.PATH),
        ("KSampler", "sampler_name", InputKind.CHOICE),
        ("CLIPTextEncode", "text", InputKind.TEXT),
        ("EmptyImage", "width", InputKind.VALUE),
    ],
)
def test_known_inputs(catalogue: Catalogue, node: str, name: str, kind: InputKind):
    known = catalogue.node(node)
    assert known is not None and known.inputs[name].kind == kind
    assert known.inputs[name].folder == ("output" if node == "LoadImageOutput" else "input")


def test_every_file_input_refuses_every_way_out(catalogue: Catalogue):
    """Each file input set to a traversal, an absolute path, a wrapped value, an annotation or
    a link is refused (uploads are passed on to be looked up among the tenant's own files,
    where none of these names can be found)."""
    policy = NodePolicy()
    let_through = []
    for node in catalogue.classes():
        for name, spec in node.inputs.items():
            if spec.kind not in FILE_KINDS:
                continue
            for value in ATTACKS:
                workflow = {
                    "1": {"class_type": node.name, "inputs": {name: value}},
                    "9": {"class_type": "EmptyImage", "inputs": {}},
                }
                verdict = check_workflow(workflow, catalogue, policy)
                refused = "1" in verdict.node_errors
                looked_up = any(ref.input_name == name for ref in verdict.uploads)
                if not refused and not (spec.kind == InputKind.UPLOAD and looked_up):
                    let_through.append(f"{node.name}.{name} = {value!r}")
    assert let_through == []


def test_custom_nodes_are_judged_by_their_inputs(catalogue: Catalogue):
    reader = catalogue.node("GenwayProbeReadFile")
    upper = catalogue.node("GenwayProbeUpper")
    assert reader is not None and reader.custom and reader.file_related
    assert upper is not None and upper.custom and not upper.file_related
    read = {"1": {"class_type": "GenwayProbeReadFile", "inputs": {"path": "/etc/hostname"}}}
    assert "1" in check_workflow(read, catalogue, NodePolicy()).node_errors
    allowed = NodePolicy(allow=frozenset({"GenwayProbeReadFile"}))
    assert check_workflow(read, catalogue, allowed).node_errors == {}
    shout = {"1": {"class_type": "GenwayProbeUpper", "inputs": {"text": "hi"}}}
    assert check_workflow(shout, catalogue, NodePolicy()).node_errors == {}


def test_every_listed_option_of_a_stock_choice_is_accepted(catalogue: Catalogue):
    """No false refusals: each option a stock node lists (samplers, `edm_playground_v2.5`,
    `hed/pidi/scribble/ted`, ...) passes, as does each model file in a model list."""
    refused = []
    for node in catalogue.classes():
        for name, spec in node.inputs.items():
            if spec.kind not in (InputKind.CHOICE, InputKind.MODEL):
                continue
            for option in spec.options:
                if spec.kind == InputKind.MODEL and option not in catalogue.model_files:
                    continue
                workflow = {"1": {"class_type": node.name, "inputs": {name: option}}}
                if check_workflow(workflow, catalogue, NodePolicy()).node_errors:
                    refused.append(f"{node.name}.{name} = {option!r}")
    assert refused == []
