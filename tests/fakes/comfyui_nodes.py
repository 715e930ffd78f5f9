"""The fake ComfyUI's node catalogue: what `/object_info` lists, how `POST /prompt` validates a
workflow against it, and how each node "executes" (Pillow images instead of torch tensors).

Validation follows ComfyUI's `execution.validate_prompt` observably: the same error types,
messages and `node_errors` shapes as the recorded transcript and the server source.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps

DEFAULT_CHECKPOINTS = ("v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors")
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]
INT_RANGE = {"min": 1, "max": 16384, "step": 1}


@dataclass
class Folders:
    input: Path
    output: Path
    temp: Path

    def by_type(self, kind: str) -> Path | None:
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind)


@dataclass
class NodeRun:
    """What running one node produced: its outputs and, for output nodes, its UI output."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


@dataclass
class NodeSpec:
    name: str
    category: str
    required: Callable[[Folders], dict[str, list[Any]]]
    returns: tuple[str, ...]
    run: Callable[[dict[str, Any], Folders], NodeRun]
    output_node: bool = False
    progress_input: str | None = None  # the input holding a step count, as KSampler's `steps`
    weight: int = 1  # share of a prompt's execution time: sampling dominates a real run
    check: Callable[[dict[str, Any], Folders], str | bool] | None = None
    changed: Callable[[dict[str, Any], Folders], str] | None = None
    return_names: tuple[str, ...] = field(default=())


class NodeFailure(Exception):
    """Raised inside a node, as a ComfyUI node raises: reported as `execution_error`."""

    def __init__(self, message: str, exception_type: str = "Exception") -> None:
        super().__init__(message)
        self.exception_type = exception_type


def _rgb(color: int) -> tuple[int, int, int]:
    return ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)


def _input_files(folders: Folders) -> list[str]:
    if not folders.input.is_dir():
        return []
    return sorted(p.name for p in folders.input.iterdir() if p.is_file())


def resolve_annotated(name: str, folders: Folders) -> Path | None:
    """`name`, `sub/name` or `name [output]` as ComfyUI resolves it, or None outside the folder."""
    kind = "input"
    for suffix in ("input", "output", "temp"):
        if name.endswith(f" [{suffix}]"):
            name, kind = name[: -len(suffix) - 3], suffix
    base = folders.by_type(kind)
    if base is None or not name or name.startswith("/") or ".." in name:
        return None
    return base / name


def _save_images(images: list[Image.Image], prefix: str, base: Path, kind: str) -> NodeRun:
    normalized = os.path.normpath(prefix)
    subfolder, stem = os.path.dirname(normalized), os.path.basename(normalized)
    folder = Path(os.path.abspath(os.path.join(base, subfolder)))
    common = os.path.commonpath((str(base), str(folder)))
    if common != str(base):
        raise NodeFailure(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {folder}\n         output_dir: {base}"
            f"\n         commonpath: {common}\n"
        )
    folder.mkdir(parents=True, exist_ok=True)
    taken = [p.name[len(stem) + 1 : -5] for p in folder.glob(f"{stem}_*_.png")]
    counter = max((int(n) for n in taken if n.isdigit()), default=0) + 1
    results = []
    for image in images:
        filename = f"{stem}_{counter:05}_.png"
        image.save(folder / filename, format="PNG", compress_level=4)
        results.append({"filename": filename, "subfolder": subfolder, "type": kind})
        counter += 1
    return NodeRun((), {"images": results})


def _load_image(inputs: dict[str, Any], folders: Folders) -> NodeRun:
    path = resolve_annotated(inputs["image"], folders)
    if path is None or not path.is_file():
        raise NodeFailure(f"Invalid image file: {inputs['image']}")
    with Image.open(path) as image:
        loaded = ImageOps.exif_transpose(image).convert("RGB")
    return NodeRun(([loaded], None))


def _check_image(inputs: dict[str, Any], folders: Folders) -> str | bool:
    path = resolve_annotated(str(inputs["image"]), folders)
    return True if path is not None and path.is_file() else f"Invalid image file: {inputs['image']}"


def _image_hash(inputs: dict[str, Any], folders: Folders) -> str:
    path = resolve_annotated(str(inputs["image"]), folders)
    if path is None or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sample(inputs: dict[str, Any], _folders: Folders) -> NodeRun:
    digest = hashlib.sha256(f"{inputs['seed']}:{inputs['positive']}".encode()).digest()
    return NodeRun(({**inputs["latent_image"], "color": tuple(digest[:3])},))


def _decode(inputs: dict[str, Any], _folders: Folders) -> NodeRun:
    latent = inputs["samples"]
    size, color = (latent["width"], latent["height"]), latent.get("color") or (0, 0, 0)
    return NodeRun(([Image.new("RGB", size, color) for _ in range(latent["batch_size"])],))


def _int(default: int, **bounds: Any) -> list[Any]:
    return ["INT", {"default": default, **bounds}]


def build_catalogue(checkpoints: list[str]) -> dict[str, NodeSpec]:
    """The node classes this fake knows, by class_type."""
    image = ["IMAGE"]
    specs = [
        NodeSpec(
            "EmptyImage",
            "image",
            lambda _f: {
                "width": _int(512, **INT_RANGE),
                "height": _int(512, **INT_RANGE),
                "batch_size": _int(1, min=1, max=4096),
                "color": _int(0, min=0, max=16777215, step=1, display="color"),
            },
            ("IMAGE",),
            lambda i, _f: NodeRun(
                (
                    [
                        Image.new("RGB", (i["width"], i["height"]), _rgb(i["color"]))
                        for _ in range(i["batch_size"])
                    ],
                )
            ),
        ),
        NodeSpec(
            "ImageInvert",
            "image",
            lambda _f: {"image": image},
            ("IMAGE",),
            lambda i, _f: NodeRun(([ImageOps.invert(im) for im in i["image"]],)),
        ),
        NodeSpec(
            "ImageBlur",
            "image/postprocessing",
            lambda _f: {
                "image": image,
                "blur_radius": _int(1, min=1, max=31, step=1),
                "sigma": ["FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1}],
            },
            ("IMAGE",),
            lambda i, _f: NodeRun(
                ([im.filter(ImageFilter.GaussianBlur(i["sigma"])) for im in i["image"]],)
            ),
        ),
        NodeSpec(
            "SaveImage",
            "image",
            lambda _f: {"images": image, "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
            (),
            lambda i, f: _save_images(i["images"], i["filename_prefix"], f.output, "output"),
            output_node=True,
        ),
        NodeSpec(
            "PreviewImage",
            "image",
            lambda _f: {"images": image},
            (),
            lambda i, f: _save_images(i["images"], "ComfyUI_temp", f.temp, "temp"),
            output_node=True,
        ),
        NodeSpec(
            "LoadImage",
            "image",
            lambda f: {"image": [_input_files(f), {"image_upload": True}]},
            ("IMAGE", "MASK"),
            _load_image,
            check=_check_image,
            changed=_image_hash,
        ),
        NodeSpec(
            "CheckpointLoaderSimple",
            "loaders",
            lambda _f: {"ckpt_name": [list(checkpoints)]},
            ("MODEL", "CLIP", "VAE"),
            lambda i, _f: NodeRun((f"model:{i['ckpt_name']}", "clip", "vae")),
        ),
        NodeSpec(
            "CLIPTextEncode",
            "conditioning",
            lambda _f: {
                "text": ["STRING", {"multiline": True, "dynamicPrompts": True}],
                "clip": ["CLIP"],
            },
            ("CONDITIONING",),
            lambda i, _f: NodeRun((i["text"],)),
        ),
        NodeSpec(
            "EmptyLatentImage",
            "latent",
            lambda _f: {
                "width": _int(512, min=16, max=16384, step=8),
                "height": _int(512, min=16, max=16384, step=8),
                "batch_size": _int(1, min=1, max=4096),
            },
            ("LATENT",),
            lambda i, _f: NodeRun(
                ({"width": i["width"], "height": i["height"], "batch_size": i["batch_size"]},)
            ),
        ),
        NodeSpec(
            "KSampler",
            "sampling",
            lambda _f: {
                "model": ["MODEL"],
                "seed": _int(0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                "steps": _int(20, min=1, max=10000),
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1}],
                "sampler_name": [SAMPLERS],
                "scheduler": [SCHEDULERS],
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "latent_image": ["LATENT"],
                "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
            },
            ("LATENT",),
            _sample,
            progress_input="steps",
            weight=8,
        ),
        NodeSpec(
            "VAEDecode",
            "latent",
            lambda _f: {"samples": ["LATENT"], "vae": ["VAE"]},
            ("IMAGE",),
            _decode,
        ),
    ]
    return {spec.name: spec for spec in specs}


def node_info(spec: NodeSpec, folders: Folders) -> dict[str, Any]:
    """One `/object_info` entry, in ComfyUI's shape."""
    required = spec.required(folders)
    return {
        "input": {"required": required},
        "input_order": {"required": list(required)},
        "output": list(spec.returns),
        "output_is_list": [False] * len(spec.returns),
        "output_name": list(spec.return_names or spec.returns),
        "name": spec.name,
        "display_name": spec.name,
        "description": "",
        "python_module": "nodes",
        "category": spec.category,
        "output_node": spec.output_node,
    }
