"""Workflow rendering, parameter bounds, structural validation and LoadImage rewriting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from genway.engines.comfyui.workflows import (
    DEFAULT_CHECKPOINT,
    MAX_SEED,
    InvalidWorkflow,
    Txt2ImgParams,
    load_template,
    render_txt2img,
    validate_api_workflow,
)


def by_class(workflow: dict[str, Any], class_type: str) -> list[dict[str, Any]]:
    return [node["inputs"] for node in workflow.values() if node["class_type"] == class_type]


def test_render_fills_every_parameter():
    params = Txt2ImgParams(
        prompt="a red fox",
        negative_prompt="blurry",
        width=768,
        height=512,
        steps=30,
        seed=1234,
        checkpoint="sdxl/base.safetensors",
    )

    workflow = render_txt2img(params)

    assert validate_api_workflow(workflow) is workflow
    [sampler] = by_class(workflow, "KSampler")
    assert (sampler["seed"], sampler["steps"]) == (1234, 30)
    assert workflow[sampler["positive"][0]]["inputs"]["text"] == "a red fox"
    assert workflow[sampler["negative"][0]]["inputs"]["text"] == "blurry"
    assert by_class(workflow, "EmptyLatentImage")[0] | {"batch_size": 1} == {
        "width": 768,
        "height": 512,
        "batch_size": 1,
    }
    assert by_class(workflow, "CheckpointLoaderSimple") == [{"ckpt_name": "sdxl/base.safetensors"}]
    assert len(by_class(workflow, "SaveImage")) == 1


def test_render_does_not_share_state_between_calls():
    first = render_txt2img(Txt2ImgParams(prompt="one"))
    second = render_txt2img(Txt2ImgParams(prompt="two"))
    assert first != second
    assert by_class(load_template("txt2img"), "CLIPTextEncode")[0]["text"] == ""


def test_defaults_and_random_seed():
    params = Txt2ImgParams(prompt="x")
    assert (params.width, params.height, params.steps) == (512, 512, 20)
    assert params.checkpoint == DEFAULT_CHECKPOINT
    assert 0 <= params.seed < 2**53
    assert 0 <= Txt2ImgParams(prompt="x", seed=None).seed
    assert 0 <= Txt2ImgParams(prompt="x", seed="random").seed  # type: ignore[arg-type]
    assert Txt2ImgParams(prompt="x", seed=MAX_SEED).seed == MAX_SEED


@pytest.mark.parametrize(
    "changes",
    [
        {"width": 63},
        {"width": 2056},
        {"height": 100},
        {"height": 56},
        {"steps": 0},
        {"steps": 151},
        {"seed": -1},
        {"seed": MAX_SEED + 1},
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 4001},
        {"negative_prompt": "x" * 4001},
        {"checkpoint": "../../etc/passwd"},
        {"checkpoint": "/abs.safetensors"},
        {"sampler": "euler"},
    ],
)
def test_out_of_bounds_parameters_are_rejected(changes: dict[str, Any]):
    with pytest.raises(ValidationError):
        Txt2ImgParams(**({"prompt": "ok"} | changes))


def test_bounds_are_inclusive():
    params = Txt2ImgParams(prompt="x" * 4000, width=64, height=2048, steps=150, seed=0)
    assert (params.width, params.height, params.steps, params.seed) == (64, 2048, 150, 0)


GOOD = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}, "_meta": {"title": "x"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "p"}},
}


@pytest.mark.parametrize(
    ("workflow", "problem"),
    [
        ([], "must be an object"),
        ({}, "no nodes"),
        ({"nodes": [], "links": []}, "UI format"),
        ({"1": "SaveImage"}, "node '1' must be an object"),
        ({"1": {"inputs": {}}}, "class_type must be a non-empty string"),
        ({"1": {"class_type": "SaveImage"}}, "inputs must be an object"),
        ({"1": {"class_type": "X", "inputs": {"a": ["2"]}}}, "must be a link"),
        ({"1": {"class_type": "X", "inputs": {"a": ["2", -1]}}}, "must be a link"),
        ({"1": {"class_type": "X", "inputs": {"a": [2, 0]}}}, "must be a link"),
        ({"1": {"class_type": "X", "inputs": {"a": ["9", 0]}}}, "missing node '9'"),
        (
            {
                "1": {"class_type": "X", "inputs": {"a": ["2", 0]}},
                "2": {"class_type": "X", "inputs": {"a": ["1", 0]}},
            },
            "depends on itself",
        ),
        ({"1": {"class_type": "X", "inputs": {"a": ["1", 0]}}}, "depends on itself"),
    ],
)
def test_malformed_workflows_are_rejected(workflow: Any, problem: str):
    with pytest.raises(InvalidWorkflow) as caught:
        validate_api_workflow(workflow)
    assert any(problem in text for text in caught.value.problems), caught.value.problems
    assert caught.value.status_code == 422
    assert caught.value.extra == {"problems": caught.value.problems}


def test_every_problem_is_listed():
    workflow = {"1": {"inputs": {}}, "2": {"class_type": "X", "inputs": {"a": ["7", 0]}}}
    with pytest.raises(InvalidWorkflow) as caught:
        validate_api_workflow(workflow)
    assert len(caught.value.problems) == 2


def test_too_many_nodes_are_rejected():
    workflow = {str(i): {"class_type": "X", "inputs": {}} for i in range(5)}
    with pytest.raises(InvalidWorkflow):
        validate_api_workflow(workflow, max_nodes=4)
    assert validate_api_workflow(workflow, max_nodes=5) is workflow
