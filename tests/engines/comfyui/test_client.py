"""The ComfyUI client against the fake ComfyUI: HTTP API, WebSocket progress and failures."""

from __future__ import annotations

import asyncio
import copy
import io
import uuid

import pytest
from PIL import Image
from websockets.asyncio.client import connect

from genway.engines.comfyui.client import (
    BackendUnavailable,
    ComfyUIClient,
    ExecutionFailed,
    FellBackToPolling,
    Finished,
    Interrupted,
    NodeErrors,
    PromptLost,
    UnexpectedResponse,
    WatchEvent,
)
from genway.engines.comfyui.protocol import (
    ExecutionStarted,
    ExecutionSucceeded,
    NodeExecuted,
    NodeExecuting,
    PreviewImage,
    Progress,
    ProgressState,
)
from genway.engines.comfyui.workflows import Txt2ImgParams, render_txt2img
from tests.engines.comfyui.conftest import invert_workflow, make_client, new_client_id, run_workflow
from tests.fakes.comfyui import FakeComfyUI


def png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_txt2img_reports_progress_and_outputs(fake: FakeComfyUI, client: ComfyUIClient):
    params = Txt2ImgParams(prompt="a lighthouse at dusk", width=128, height=96, steps=6, seed=7)
    events = await run_workflow(client, render_txt2img(params))

    kinds = [type(event) for event in events]
    assert kinds[0] is ExecutionStarted
    assert isinstance(events[-1], Finished)
    progress = [event for event in events if isinstance(event, Progress)]
    assert [(p.value, p.max) for p in progress] == [(step, 6) for step in range(1, 7)]
    assert {p.node for p in progress} == {"3"}
    assert progress[-1].fraction == 1.0
    executing = [event.node for event in events if isinstance(event, NodeExecuting)]
    assert executing == ["4", "6", "7", "5", "3", "8", "9"]
    assert any(isinstance(event, ProgressState) for event in events)
    assert ExecutionSucceeded in kinds
    executed = [event for event in events if isinstance(event, NodeExecuted)]
    assert [event.node for event in executed] == ["9"]

    finished = events[-1]
    assert finished.history.succeeded
    [image] = finished.images
    assert image.filename == "genway_00001_.png" and image.type == "output"
    data = await client.view(image.filename, image.subfolder, image.type)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == "PNG"
        assert decoded.size == (128, 96)


async def test_messages_reach_only_the_submitting_client(fake: FakeComfyUI, client: ComfyUIClient):
    async with connect(fake.base_url.replace("http", "ws") + "/ws?clientId=bystander") as other:
        events = await run_workflow(client, invert_workflow())
        assert isinstance(events[-1], Finished)
        frames = []
        while True:
            try:
                frames.append(await asyncio.wait_for(other.recv(), 0.05))
            except TimeoutError:
                break
    assert frames, "the bystander gets its own status frame at least"
    assert all('"type": "status"' in frame for frame in frames)


@pytest.mark.parametrize(
    ("workflow", "error_type", "failing_node"),
    [
        ({"1": {"class_type": "NoSuchNode", "inputs": {}}}, "invalid_prompt", None),
        (
            {
                **invert_workflow(),
                "1": {"class_type": "EmptyImage", "inputs": {"width": "wide", "height": 8}},
            },
            "prompt_outputs_failed_validation",
            "1",
        ),
        ({"1": invert_workflow()["1"]}, "prompt_no_outputs", None),
    ],
    ids=["unknown-node", "bad-input", "no-output"],
)
async def test_rejected_workflows_raise_node_errors(
    fake: FakeComfyUI, client: ComfyUIClient, workflow, error_type, failing_node
):
    with pytest.raises(NodeErrors) as caught:
        await client.submit(workflow, new_client_id())

    assert caught.value.error_type == error_type
    if failing_node is None:
        assert caught.value.node_errors == {}
    else:
        assert caught.value.node_errors[failing_node]["class_type"] == "EmptyImage"
        assert f"node {failing_node} (EmptyImage)" in str(caught.value)
    assert fake.prompt_count == 1
    assert (await client.queue()).length == 0


async def test_injected_submit_failure_raises_node_errors(fake: FakeComfyUI, client: ComfyUIClient):
    fake.fail_next_submit({"2": {"errors": [], "dependent_outputs": ["3"], "class_type": "X"}})

    with pytest.raises(NodeErrors) as caught:
        await client.submit(invert_workflow(), new_client_id())
    assert caught.value.error_type == "prompt_outputs_failed_validation"
    assert list(caught.value.node_errors) == ["2"]

    submitted = await client.submit(invert_workflow(), new_client_id())
    assert submitted.prompt_id
    assert fake.prompt_count == 2


async def test_execution_error_raises_execution_failed(fake: FakeComfyUI, client: ComfyUIClient):
    fake.fail_next_execution("CUDA out of memory", node_id="2", exception_type="RuntimeError")

    with pytest.raises(ExecutionFailed) as caught:
        await run_workflow(client, invert_workflow())

    failure = caught.value
    assert (failure.node_id, failure.node_type) == ("2", "ImageInvert")
    assert failure.exception_message == "CUDA out of memory"
    assert failure.exception_type == "RuntimeError"
    assert "ImageInvert (node 2) failed" in str(failure)


async def test_saving_outside_the_output_folder_fails_like_comfyui(client: ComfyUIClient):
    workflow = invert_workflow("../../escape")

    with pytest.raises(ExecutionFailed) as caught:
        await run_workflow(client, workflow)

    assert caught.value.node_type == "SaveImage"
    assert "Saving image outside the output folder is not allowed" in caught.value.exception_message


async def test_interrupt_stops_the_running_prompt(fake: FakeComfyUI, client: ComfyUIClient):
    fake.execution_time = 2.0
    workflow = render_txt2img(Txt2ImgParams(prompt="slow", steps=100, seed=1))
    client_id = new_client_id()
    submitted = await client.submit(workflow, client_id)
    seen: list[WatchEvent] = []

    with pytest.raises(Interrupted) as caught:
        async for event in client.watch(submitted.prompt_id, client_id):
            seen.append(event)
            if isinstance(event, Progress):
                await client.interrupt(submitted.prompt_id)

    assert caught.value.node_type == "KSampler"
    assert sum(isinstance(event, Progress) for event in seen) >= 1
    history = await client.history(submitted.prompt_id)
    assert history is not None and not history.succeeded


async def test_interrupt_for_another_prompt_is_ignored(fake: FakeComfyUI, client: ComfyUIClient):
    client_id = new_client_id()
    submitted = await client.submit(invert_workflow(), client_id)
    await client.interrupt(str(uuid.uuid4()))

    events = [event async for event in client.watch(submitted.prompt_id, client_id)]
    assert isinstance(events[-1], Finished)


async def test_cancel_removes_a_pending_prompt(fake: FakeComfyUI, client: ComfyUIClient):
    fake.pause()
    first = await client.submit(invert_workflow(), new_client_id())
    second = await client.submit(invert_workflow(), new_client_id())
    assert [item.prompt_id for item in (await client.queue()).pending] == [
        first.prompt_id,
        second.prompt_id,
    ]

    await client.cancel(second.prompt_id)

    queue = await client.queue()
    assert [item.prompt_id for item in queue.pending] == [first.prompt_id]
    assert queue.contains(first.prompt_id) and not queue.contains(second.prompt_id)


async def test_dropped_websocket_falls_back_to_history_polling(
    fake: FakeComfyUI, client: ComfyUIClient
):
    fake.execution_time = 0.3
    workflow = render_txt2img(Txt2ImgParams(prompt="drop", steps=10, seed=2))

    async def drop_on_first_progress(event: WatchEvent) -> None:
        if isinstance(event, Progress) and event.value == 1:
            await fake.drop_websockets()

    events = await run_workflow(client, workflow, drop_on_first_progress)

    fallbacks = [event for event in events if isinstance(event, FellBackToPolling)]
    assert len(fallbacks) == 1
    assert "closed" in fallbacks[0].reason
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert len(finished.images) == 1
    assert await client.view(finished.images[0].filename)


async def test_backend_dying_mid_job_raises_backend_unavailable(
    fake: FakeComfyUI, client: ComfyUIClient
):
    fake.execution_time = 1.0
    workflow = render_txt2img(Txt2ImgParams(prompt="die", steps=20, seed=3))

    async def die_on_first_progress(event: WatchEvent) -> None:
        if isinstance(event, Progress):
            await fake.die()

    with pytest.raises(BackendUnavailable) as caught:
        await run_workflow(client, workflow, die_on_first_progress)
    assert not isinstance(caught.value, PromptLost)
    assert caught.value.base_url == fake.base_url

    with pytest.raises(BackendUnavailable):
        await client.submit(invert_workflow(), new_client_id())


async def test_backend_restarting_mid_job_loses_the_prompt(
    fake: FakeComfyUI, client: ComfyUIClient
):
    fake.execution_time = 1.0
    workflow = render_txt2img(Txt2ImgParams(prompt="restart", steps=20, seed=4))

    async def restart_on_first_progress(event: WatchEvent) -> None:
        if isinstance(event, Progress):
            await fake.die()
            await fake.revive()

    with pytest.raises(PromptLost):
        await run_workflow(client, workflow, restart_on_first_progress)

    assert (await client.system_stats())["system"]["comfyui_version"] == "0.3.64"


async def test_hung_backend_raises_backend_unavailable(fake: FakeComfyUI):
    fake.execution_time = 1.0
    workflow = render_txt2img(Txt2ImgParams(prompt="hang", steps=20, seed=5))

    async def hang_on_first_progress(event: WatchEvent) -> None:
        if isinstance(event, Progress):
            fake.hang()

    options = {"timeout": 0.2, "liveness_interval": 0.2, "max_poll_failures": 2}
    async with make_client(fake.base_url, **options) as client:
        with pytest.raises(BackendUnavailable):
            await run_workflow(client, workflow, hang_on_first_progress)
        with pytest.raises(BackendUnavailable):
            await client.queue()
    fake.unhang()


async def test_unreachable_backend_raises_backend_unavailable():
    async with FakeComfyUI() as fake:
        url = fake.base_url
    async with make_client(url) as client:
        with pytest.raises(BackendUnavailable):
            await client.system_stats()
        with pytest.raises(BackendUnavailable):
            await client.submit(invert_workflow(), new_client_id())


async def test_uploaded_image_feeds_a_load_image_workflow(client: ComfyUIClient):
    uploaded = await client.upload_image(png((32, 24), (255, 0, 0)), "in.png", subfolder="jobs")
    assert (uploaded.name, uploaded.subfolder, uploaded.type) == ("in.png", "jobs", "input")
    assert await client.view(uploaded.name, uploaded.subfolder, "input") == png(
        (32, 24), (255, 0, 0)
    )
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "up"}},
    }
    with pytest.raises(NodeErrors) as caught:
        await client.submit(workflow, new_client_id())
    assert caught.value.node_errors["1"]["errors"][0]["type"] == "custom_validation_failed"

    rewritten = copy.deepcopy(workflow)
    rewritten["1"]["inputs"]["image"] = uploaded.reference
    events = await run_workflow(client, rewritten)

    finished = events[-1]
    assert isinstance(finished, Finished)
    data = await client.view(finished.images[0].filename, finished.images[0].subfolder)
    with Image.open(io.BytesIO(data)) as result:
        assert result.size == (32, 24)
        assert result.convert("RGB").getpixel((0, 0)) == (0, 255, 255)


async def test_upload_without_overwrite_keeps_both_files(client: ComfyUIClient):
    first = await client.upload_image(png((4, 4), (1, 2, 3)), "same.png", overwrite=False)
    second = await client.upload_image(png((4, 4), (9, 9, 9)), "same.png", overwrite=False)
    assert (first.name, second.name) == ("same.png", "same (1).png")
    assert first.reference == "same.png"


async def test_watching_after_the_prompt_finished_reads_history(
    fake: FakeComfyUI, client: ComfyUIClient
):
    client_id = new_client_id()
    submitted = await client.submit(invert_workflow(), client_id, prompt_id="job-42")
    assert submitted.prompt_id == "job-42"
    await fake.wait_idle()

    events = [event async for event in client.watch("job-42", client_id)]

    assert len(events) == 1 and isinstance(events[0], Finished)
    assert events[0].images[0].filename == "test_00001_.png"


async def test_preview_frames_are_surfaced(fake: FakeComfyUI, client: ComfyUIClient):
    fake.send_previews = True
    workflow = render_txt2img(Txt2ImgParams(prompt="preview", steps=3, seed=6))

    events = await run_workflow(client, workflow)

    previews = [event for event in events if isinstance(event, PreviewImage)]
    assert len(previews) == 3
    assert previews[0].media_type == "image/png"
    with Image.open(io.BytesIO(previews[0].data)) as preview:
        assert preview.format == "PNG"


async def test_queue_stats_and_object_info(fake: FakeComfyUI, client: ComfyUIClient):
    fake.pause()
    submitted = await client.submit(invert_workflow(), new_client_id())
    queue = await client.queue()
    assert queue.length == 1 and queue.pending[0].prompt_id == submitted.prompt_id

    stats = await client.system_stats()
    assert stats["devices"][0]["type"] == "cpu"
    info = await client.object_info("KSampler")
    assert info["KSampler"]["input"]["required"]["steps"][0] == "INT"
    assert "SaveImage" in await client.object_info()
    assert await client.history(submitted.prompt_id) is None

    with pytest.raises(UnexpectedResponse) as caught:
        await client.view("missing.png")
    assert caught.value.status_code == 404
