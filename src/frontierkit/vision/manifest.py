"""The vision area's manifest: ``frontier vision``, its tour section and the ``vision`` model kind
(MLP, CNN, ResNet and ViT image classifiers; they know the dataset they were trained on)."""
from __future__ import annotations

from typing import Any

from ..areas import Manifest, ModelKind

MANIFEST = Manifest(
    name="vision", help="small image classifiers (MLP, CNN, ResNet, ViT) on digits/shapes",
    commands="frontierkit.vision.commands:register",
    tour={"vision": "frontierkit.vision.demo:tour"},
    kinds=(ModelKind("vision", build="frontierkit.vision.models:build_model",
                     classes=tuple(f"frontierkit.vision.models:{c}" for c in ("MLP", "SmallCNN", "SmallResNet",
                                                                               "TinyViT")),
                     tags=frozenset({"classifier"}), config_of="frontierkit.vision.manifest:config_of",
                     detect="frontierkit.vision.manifest:detect", dataset="frontierkit.vision.manifest:dataset",
                     description="an image classifier: images (N, C, H, W) -> class logits"),),
)


def config_of(model) -> dict[str, Any]:
    from ..config import to_dict
    return to_dict(model.config)


def detect(meta: dict[str, Any]) -> bool:
    """A vision checkpoint written before config.json named its kind."""
    from .models import MODEL_NAMES
    model = meta.get("model")
    return isinstance(model, dict) and model.get("name") in MODEL_NAMES


def dataset(meta: dict[str, Any], split: str):
    """(images, labels) of ``split`` of the data named by the run config (digits when unknown)."""
    from ..config import from_dict
    from .train import VisionDataConfig, load_data
    run = meta.get("run") or {}
    return load_data(from_dict(VisionDataConfig, run.get("data", {}), prefix="data."), split)
