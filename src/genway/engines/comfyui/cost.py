"""What a ComfyUI workflow will cost, read from its nodes before it runs, and the tier limits
on it: `workflow_max_nodes` and `workflow_max_pixels` here, at submission on every dialect and
again by the worker before a backend sees it (`workflow_max_seconds`: time_limit.py).

Pixels are those of the largest image or latent any one node makes, width x height x batch (a
video latent's frames count like a batch): the max over nodes, not the sum, so "4 MP" means what
it says to a user, and the node limit bounds how many such steps a workflow has. Sizes come from
literal inputs and flow along links: a node with `width` and `height` makes that size (0 keeps the
aspect of its input, as ImageScale does), `scale_by`/`upscale_by` and `megapixels` resize its
input, upscale models count as 4x, the Repeat*Batch and *Batch nodes multiply or add batches, and
any other node keeps the largest size it reads. A size fed by a link is computed when it comes
from a literal `value` (PrimitiveInt) or GetImageSize; otherwise it counts as the tier's whole
pixel budget, so the workflow passes unless something enlarges it further (the time limit bounds
what it really costs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from genway.engines.comfyui.admission import WorkflowRefused
from genway.engines.comfyui.node_policy import Catalogue
from genway.engines.comfyui.workflows import Workflow
from genway.errors import GenwayError, NotFound
from genway.orgs.models import Organization
from genway.ratelimit.tiers import MEGAPIXEL, TierLimits, limits_for

LIMIT_EXCEEDED = "limit_exceeded"
IMAGE_TYPES = frozenset({"IMAGE", "LATENT", "MASK", "VIDEO"})
# Stock nodes with width and height inputs that make no image (SDXL's conditioning sizes are
# often 4096 x 4096); a backend's catalogue, when at hand, says what any node returns.
NOT_IMAGES = frozenset({"CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner"})
BATCH_INPUTS = ("batch_size", "length", "video_frames")
SCALE_INPUTS = ("scale_by", "upscale_by")
REPEATS = {"RepeatLatentBatch": "amount", "RepeatImageBatch": "amount"}
CONCATENATIONS = frozenset({"ImageBatch", "LatentBatch"})
MODEL_UPSCALE = {"ImageUpscaleWithModel": 4.0}
SIZE_READERS = {"GetImageSize": ("width", "height", "batch")}


@dataclass(frozen=True)
class Size:
    width: float
    height: float
    batch: float

    @property
    def pixels(self) -> float:
        return self.width * self.height * self.batch


@dataclass(frozen=True)
class WorkflowCost:
    """The workflow's node count and its largest image: `pixels`, made by node `node_id`."""

    nodes: int
    pixels: int = 0
    node_id: str | None = None
    size: Size | None = None


class WorkflowOverLimit(GenwayError):
    """The workflow costs more than the organization's tier allows: 422 with
    `code: limit_exceeded`, the limit's name, the workflow's value, the maximum and the tier."""

    status_code = 422

    def __init__(
        self,
        limit: str,
        value: int,
        maximum: int,
        tier: str,
        message: str,
        node: tuple[str, str] | None = None,
    ) -> None:
        self.limit, self.value, self.maximum, self.tier = limit, value, maximum, tier
        self.message = message
        self.node = node
        super().__init__(message, extra={"code": LIMIT_EXCEEDED, **self.details()})

    def details(self) -> dict[str, Any]:
        where = {"node_id": self.node[0], "node_type": self.node[1]} if self.node else {}
        return {
            "limit": self.limit,
            "value": self.value,
            "maximum": self.maximum,
            "tier": self.tier,
            **where,
        }

    def as_refused(self) -> WorkflowRefused:
        """The same refusal in ComfyUI's 400 shape (`error.type: limit_exceeded`, and the node
        that makes the largest image among `node_errors`), for `POST /prompt`."""
        details = f"{self.limit}: {self.value} > {self.maximum}"
        error = {
            "type": LIMIT_EXCEEDED,
            "message": self.message,
            "details": details,
            "extra_info": self.details(),
        }
        node_errors = (
            {self.node[0]: {"errors": [error], "dependent_outputs": [], "class_type": self.node[1]}}
            if self.node
            else {}
        )
        refused = WorkflowRefused(LIMIT_EXCEEDED, self.message, details, node_errors)
        refused.extra["error"]["extra_info"] = self.details()
        return refused


async def organization_limits(session: AsyncSession, org_id: int) -> tuple[str, TierLimits]:
    """The organization's tier and its effective limits. Raises NotFound."""
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found")
    return str(org.tier), limits_for(org)


async def admit_cost(
    session: AsyncSession, org_id: int, workflow: Workflow, catalogue: Catalogue | None
) -> tuple[str, TierLimits]:
    """The organization's tier and limits, once the workflow is within them.
    Raises WorkflowOverLimit."""
    tier, limits = await organization_limits(session, org_id)
    check_cost(workflow, limits, tier, catalogue)
    return tier, limits


def check_cost(
    workflow: Workflow, limits: TierLimits, tier: str, catalogue: Catalogue | None
) -> WorkflowCost:
    """The workflow's cost, when it is within the node and pixel limits.
    Raises WorkflowOverLimit naming the first limit it is over."""
    cost = workflow_cost(workflow, catalogue, limits.workflow_max_pixels)
    max_nodes = limits.workflow_max_nodes
    if max_nodes is not None and cost.nodes > max_nodes:
        message = (
            f"The workflow has {cost.nodes} nodes; this organization's limit is {max_nodes} "
            f"(workflow_max_nodes, {tier} tier)"
        )
        raise WorkflowOverLimit("workflow_max_nodes", cost.nodes, max_nodes, tier, message)
    max_pixels = limits.workflow_max_pixels
    if max_pixels is not None and cost.pixels > max_pixels and cost.node_id is not None:
        node = (cost.node_id, str(workflow[cost.node_id]["class_type"]))
        size = cost.size or Size(0, 0, 0)
        made = f"{round(size.width)} x {round(size.height)} x {_plain(size.batch)}"
        message = (
            f"Node {node[0]} ({node[1]}) makes {cost.pixels:,} pixels ({made}); this "
            f"organization's limit is {max_pixels:,} (workflow_max_pixels, {tier} tier)"
        )
        raise WorkflowOverLimit("workflow_max_pixels", cost.pixels, max_pixels, tier, message, node)
    return cost


def workflow_cost(
    workflow: Workflow, catalogue: Catalogue | None, budget: int | None
) -> WorkflowCost:
    """Nodes, and the largest image of the workflow; an unknown size counts as `budget` pixels
    (sizes are not computed at all without a budget)."""
    if budget is None:
        return WorkflowCost(len(workflow))
    sizes: dict[str, Size] = {}
    for node_id in _dependencies_first(workflow):
        size = _size_of(workflow, workflow[node_id], sizes, catalogue, budget)
        if size is not None:
            sizes[node_id] = size
    if not sizes:
        return WorkflowCost(len(workflow))
    node_id = max(sizes, key=lambda key: sizes[key].pixels)
    pixels = sizes[node_id].pixels
    return WorkflowCost(len(workflow), _whole(pixels), node_id, sizes[node_id])


def _whole(value: float) -> int:
    return math.ceil(value - 1e-9) if math.isfinite(value) else 2**63 - 1


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _size_of(
    workflow: Workflow,
    node: Mapping[str, Any],
    sizes: Mapping[str, Size],
    catalogue: Catalogue | None,
    budget: int,
) -> Size | None:
    class_type, inputs = str(node["class_type"]), node["inputs"]
    upstream = [sizes[v[0]] for v in inputs.values() if _is_link(v) and v[0] in sizes]
    base = max(upstream, key=lambda size: size.pixels, default=None)
    if base is not None and class_type in CONCATENATIONS:
        base = Size(base.width, base.height, sum(size.batch for size in upstream))
    if "width" in inputs and "height" in inputs and _makes_images(class_type, catalogue):
        size: Size | None = _sized(workflow, inputs, base, sizes, budget)
    else:
        size = base
    if size is None:
        return None
    return _resized(workflow, class_type, inputs, size, sizes, budget)


def _sized(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    base: Size | None,
    sizes: Mapping[str, Size],
    budget: int,
) -> Size:
    """The size a node with `width` and `height` makes; unknown factors share out `budget`."""
    width = _number(workflow, inputs["width"], sizes)
    height = _number(workflow, inputs["height"], sizes)
    frames = [_number(workflow, inputs[name], sizes) for name in BATCH_INPUTS if name in inputs]
    if width is not None and height is not None:
        width, height = _keep_aspect(width, height, base)
    if not frames:
        frames = [base.batch if base is not None else 1.0]
    factors = [width, height, *frames]
    known = math.prod(f for f in factors if f is not None)
    if any(f is None for f in factors):
        fill = max(1.0, budget / known) if known > 0 else float(budget)
        first = factors.index(None)
        factors = [fill if i == first else 1.0 if f is None else f for i, f in enumerate(factors)]
    width, height = float(factors[0] or 0), float(factors[1] or 0)
    return Size(width, height, math.prod(float(f or 0) for f in factors[2:]))


def _keep_aspect(width: float, height: float, base: Size | None) -> tuple[float, float]:
    # ImageScale and LatentUpscale: a dimension of 0 follows the input's aspect ratio.
    if base is None or (width and height):
        return width, height
    if not width and not height:
        return base.width, base.height
    if not width:
        return (base.width * height / base.height if base.height else height), height
    return width, (base.height * width / base.width if base.width else width)


def _resized(
    workflow: Workflow,
    class_type: str,
    inputs: Mapping[str, Any],
    size: Size,
    sizes: Mapping[str, Size],
    budget: int,
) -> Size:
    """`size` after the node's scale factor, total-pixel target or batch repeat, if any."""
    for name in SCALE_INPUTS:
        if name in inputs:
            factor = _number(workflow, inputs[name], sizes)
            if factor is None:  # unknown: as large as the budget allows
                factor = max(1.0, math.sqrt(budget / size.pixels)) if size.pixels else 1.0
            size = Size(size.width * factor, size.height * factor, size.batch)
    if class_type in MODEL_UPSCALE:
        factor = MODEL_UPSCALE[class_type]
        size = Size(size.width * factor, size.height * factor, size.batch)
    if "megapixels" in inputs:
        target = _number(workflow, inputs["megapixels"], sizes)
        area = target * MEGAPIXEL if target is not None else budget / max(size.batch, 1.0)
        ratio = math.sqrt(area / (size.width * size.height)) if size.width * size.height else 1
        size = Size(size.width * ratio, size.height * ratio, size.batch)
    repeat = REPEATS.get(class_type)
    if repeat is not None and repeat in inputs:
        amount = _number(workflow, inputs[repeat], sizes)
        if amount is None:  # unknown: as many as the budget allows
            amount = max(1.0, budget / size.pixels) if size.pixels else 1.0
        size = Size(size.width, size.height, size.batch * amount)
    return size


def _makes_images(class_type: str, catalogue: Catalogue | None) -> bool:
    info = catalogue.object_info.get(class_type) if catalogue is not None else None
    if isinstance(info, Mapping):
        return any(str(kind) in IMAGE_TYPES for kind in info.get("output") or [])
    return class_type not in NOT_IMAGES


def _number(workflow: Workflow, value: Any, sizes: Mapping[str, Size]) -> float | None:
    """A numeric input's value: a literal, a primitive node's literal `value`, or what
    GetImageSize reads; None when it cannot be known before the workflow runs."""
    if _is_number(value):
        return max(0.0, float(value))
    if not _is_link(value):
        return None
    source = workflow.get(value[0])
    if source is None:
        return None
    fields = SIZE_READERS.get(str(source["class_type"]))
    if fields is not None and value[0] in sizes and value[1] < len(fields):
        return float(getattr(sizes[value[0]], fields[value[1]]))
    literal = source["inputs"].get("value")
    return max(0.0, float(literal)) if _is_number(literal) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_link(value: Any) -> bool:
    # The workflow's structure was checked at submission (workflows.py): a list is a link.
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _dependencies_first(workflow: Workflow) -> list[str]:
    """Node ids, each after the nodes it reads from (iterative: chains may be 1,000 long)."""
    order: list[str] = []
    seen: set[str] = set()
    for start in workflow:
        if start in seen:
            continue
        seen.add(start)
        path: list[tuple[str, Iterator[str]]] = [(start, _sources(workflow, start))]
        while path:
            node_id, pending = path[-1]
            nxt = next(pending, None)
            if nxt is None:
                path.pop()
                order.append(node_id)
            elif nxt not in seen:
                seen.add(nxt)
                path.append((nxt, _sources(workflow, nxt)))
    return order


def _sources(workflow: Workflow, node_id: str) -> Iterator[str]:
    for value in workflow[node_id]["inputs"].values():
        if _is_link(value) and value[0] in workflow:
            yield value[0]
