"""The file policy's pieces that need no server: classifying `/object_info` input specs, the
administrator's policy file, and redacting backend errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genway.engines.comfyui.node_policy import (
    Catalogue,
    InputKind,
    NodePolicy,
    check_workflow,
    classify_input,
    prefix_problem,
)
from genway.engines.comfyui.redaction import WITHHELD, redact_message, redact_node_errors


@pytest.mark.parametrize(
    ("name", "spec", "kind"),
    [
        ("image", [["a.png"], {"image_upload": True}], InputKind.UPLOAD),
        ("image", ["COMBO", {"image_upload": True, "image_folder": "output"}], InputKind.UPLOAD),
        ("audio", [[], {"audio_upload": True}], InputKind.UPLOAD),
        ("image", ["WEBCAM", {}], InputKind.UPLOAD),
        ("ckpt_name", [["sd15.safetensors"]], InputKind.MODEL),
        ("latent", [[]], InputKind.MODEL),
        ("folder", [["genway", "other"]], InputKind.MODEL),
        ("sampler_name", [["euler", "dpmpp_2m"]], InputKind.CHOICE),
        ("mode", ["COMBO", {"options": ["a", "b"]}], InputKind.CHOICE),
        ("filename_prefix", ["STRING", {"default": "ComfyUI"}], InputKind.OUTPUT_PREFIX),
        ("prefix", ["STRING", {}], InputKind.OUTPUT_PREFIX),
        ("model_file", ["STRING", {}], InputKind.PATH),
        ("directory", ["STRING", {}], InputKind.PATH),
        ("text", ["STRING", {"multiline": True}], InputKind.TEXT),
        ("width", ["INT", {"default": 512}], InputKind.VALUE),
        ("images", ["IMAGE"], InputKind.CONNECTION),
        ("image", ["LOAD_3D", {}], InputKind.CONNECTION),
    ],
)
def test_inputs_are_classified_from_their_spec(name: str, spec: Any, kind: InputKind):
    assert classify_input(name, spec).kind == kind


@pytest.mark.parametrize(
    ("prefix", "ok"),
    [
        ("ComfyUI", True),
        ("video/clip (1)", True),
        ("../x", False),
        ("a/../x", False),
        ("/tmp/x", False),
        ("a\\b", False),
        ("c:x", False),
        ("a//b", False),
        ("", False),
        ("x" * 201, False),
        ("a;b", False),
    ],
)
def test_output_prefixes(prefix: str, ok: bool):
    assert (prefix_problem(prefix) is None) is ok


def catalogue() -> Catalogue:
    info = {
        "Loader": {
            "input": {"required": {"ckpt_name": [["m.safetensors", "x.latent"]]}},
            "python_module": "nodes",
        },
        "Custom": {
            "input": {"required": {"path": ["STRING", {}], "n": ["INT", {}]}},
            "python_module": "custom_nodes.pack",
        },
        "Shout": {
            "input": {"required": {"text": ["STRING", {}]}},
            "python_module": "custom_nodes.pack.shout",
        },
    }
    return Catalogue(info, frozenset({"m.safetensors"}))


def errors(workflow: dict[str, Any], policy: NodePolicy | None = None) -> dict[str, Any]:
    return check_workflow(workflow, catalogue(), policy or NodePolicy()).node_errors


def test_model_choices_must_be_model_files():
    assert errors({"1": {"class_type": "Loader", "inputs": {"ckpt_name": "m.safetensors"}}}) == {}
    for value in ("x.latent", "../m.safetensors", {"__value__": "x.latent"}, ["2", 0]):
        workflow = {
            "1": {"class_type": "Loader", "inputs": {"ckpt_name": value}},
            "2": {"class_type": "Shout", "inputs": {"text": "a"}},
        }
        assert "1" in errors(workflow), value


def test_custom_nodes_with_path_inputs_need_the_administrators_allowance():
    workflow = {"1": {"class_type": "Custom", "inputs": {"path": "/etc/passwd", "n": 1}}}
    assert "1" in errors(workflow)
    assert errors(workflow, NodePolicy(allow=frozenset({"Custom"}))) == {}
    assert errors({"1": {"class_type": "Shout", "inputs": {"text": "/etc"}}}) == {}
    denied = errors(
        {"1": {"class_type": "Shout", "inputs": {}}}, NodePolicy(deny=frozenset({"Shout"}))
    )
    assert "not allowed" in denied["1"]["errors"][0]["details"]


def test_policy_files(tmp_path: Path):
    path = tmp_path / "policy.json"
    assert NodePolicy.load(None) == NodePolicy()
    path.write_text(json.dumps({"allow": ["A"], "deny": ["B"]}))
    assert NodePolicy.load(path) == NodePolicy(frozenset({"A"}), frozenset({"B"}))
    for bad in ("{", '{"allow": "A"}', '{"permit": []}', "[]"):
        path.write_text(bad)
        with pytest.raises(ValueError, match=str(path)):
            NodePolicy.load(path)
    with pytest.raises(ValueError, match="not readable"):
        NodePolicy.load(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("message", "withheld"),
    [
        ("[Errno 2] No such file or directory: '/srv/comfy/output/a.png'", True),
        ("Invalid image file: genway/1234/abc.png", True),
        ("Invalid image file: ../secret.png", True),
        ("Image x.png [output] not found", True),
        ("C:\\comfy\\input\\a.png missing", True),
        ("Invalid image file: photo.png", False),
        ("Sizes of tensors must match: 1/2 steps", False),
        ("Value 3 bigger than max of 2", False),
    ],
)
def test_messages_naming_server_files_are_withheld(message: str, withheld: bool):
    assert (redact_message(message) == WITHHELD) is withheld


def test_node_errors_keep_their_shape_but_not_the_servers_files():
    raw = {
        "7": {
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "latent: 'x' not in ['genway/other-tenant.latent']",
                    "extra_info": {
                        "input_name": "latent",
                        "input_config": [["genway/other-tenant.latent"]],
                        "received_value": "x",
                    },
                }
            ],
            "dependent_outputs": ["9"],
            "class_type": "LoadLatent",
        }
    }
    redacted = redact_node_errors(raw)
    assert redacted["7"]["class_type"] == "LoadLatent"
    assert redacted["7"]["dependent_outputs"] == ["9"]
    [error] = redacted["7"]["errors"]
    assert error["type"] == "value_not_in_list" and error["extra_info"] == {"input_name": "latent"}
    assert "other-tenant" not in json.dumps(redacted)
