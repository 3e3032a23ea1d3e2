"""Training and evaluating the vision classifiers with the shared loop (cross-entropy on digits or
shapes), and loading a trained classifier back from ``<out>/model``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import from_dict, require, to_dict
from ..train import TrainConfig, Trainer
from .models import VisionModelConfig, build_model


@dataclass(frozen=True, kw_only=True)
class VisionDataConfig:
    name: Literal["digits", "shapes"] = "digits"
    """dataset: digits (sklearn 8x8, 10 classes) or shapes (synthetic RGB, 4 shape classes)"""
    upscale: int = 1
    """digits only: bilinear upscaling factor (8 -> 8*upscale pixels)"""
    shapes_size: int = 32
    """shapes only: image side in pixels"""
    shapes_n: int = 2000
    """shapes only: number of images generated (75% train / 25% test)"""
    seed: int = 0
    """split / generation seed"""

    def __post_init__(self) -> None:
        require(self.upscale >= 1, "data.upscale", self.upscale, "must be >= 1")
        require(self.shapes_size >= 16, "data.shapes_size", self.shapes_size, "must be >= 16")
        require(self.shapes_n >= 40, "data.shapes_n", self.shapes_n, "must be >= 40")

    @property
    def image_size(self) -> int:
        return 8 * self.upscale if self.name == "digits" else self.shapes_size

    @property
    def in_channels(self) -> int:
        return 1 if self.name == "digits" else 3

    @property
    def num_classes(self) -> int:
        return 10 if self.name == "digits" else 4


def default_train() -> TrainConfig:
    return TrainConfig(steps=800, batch_size=64, lr=3e-3, warmup_steps=20, weight_decay=0.01, log_every=50)


@dataclass(frozen=True, kw_only=True)
class VisionRunConfig:
    model: VisionModelConfig = field(default_factory=VisionModelConfig)
    """classifier architecture"""
    data: VisionDataConfig = field(default_factory=VisionDataConfig)
    """dataset"""
    train: TrainConfig = field(default_factory=default_train)
    """optimizer and loop"""

    def __post_init__(self) -> None:
        m, d = self.model, self.data
        require(m.in_channels == d.in_channels, "model.in_channels", m.in_channels,
                f"data {d.name} has {d.in_channels} channel(s); set --model.in_channels {d.in_channels}")
        require(m.image_size == d.image_size, "model.image_size", m.image_size,
                f"data {d.name} images are {d.image_size} px; set --model.image_size {d.image_size}")
        require(m.num_classes == d.num_classes, "model.num_classes", m.num_classes,
                f"data {d.name} has {d.num_classes} classes; set --model.num_classes {d.num_classes}")


def run_config_for(model: str, data: str = "digits", upscale: int = 1, **train: Any) -> VisionRunConfig:
    """A consistent run config: model input shape and classes derived from the dataset."""
    d = VisionDataConfig(name=data, upscale=upscale)  # type: ignore[arg-type]
    m = VisionModelConfig(name=model, in_channels=d.in_channels, image_size=d.image_size,  # type: ignore[arg-type]
                          num_classes=d.num_classes)
    t = from_dict(TrainConfig, {**to_dict(default_train()), **train}, prefix="train.")
    return VisionRunConfig(model=m, data=d, train=t)


def load_data(cfg: VisionDataConfig, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, S, S) in [0, 1], labels (N,)) for ``split`` in train/test."""
    if cfg.name == "digits":
        from ..data.digits import load_digits
        return load_digits(split, upscale=cfg.upscale, seed=cfg.seed)
    from ..data.shapes import make_shapes
    s = make_shapes(cfg.shapes_n, size=cfg.shapes_size, seed=cfg.seed)
    n_test = cfg.shapes_n // 4
    x, y = s.images, s.labels["shape"]
    return (x[n_test:], y[n_test:]) if split == "train" else (x[:n_test], y[:n_test])


def cross_entropy_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
    """Mean cross-entropy of the logits; also reports batch accuracy (a tensor, so per-example
    gradients can vmap this loss)."""
    x, y = batch
    logits = model(x)                                    # (B, K)
    acc = (logits.argmax(-1) == y).float().mean()
    return F.cross_entropy(logits, y), {"acc": acc}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on (x, y)."""
    was = model.training
    model.eval()
    correct = sum((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    model.train(was)
    return correct / len(x)


def train_classifier(cfg: VisionRunConfig, out: str | Path, *, tracker: Any = None,
                     quiet: bool = True, resume: bool = False) -> tuple[nn.Module, dict[str, float]]:
    """Train ``cfg.model`` on ``cfg.data`` with the shared Trainer; writes ``<out>/model`` and eval.json."""
    from ..data import TensorBatches

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model)
    x_tr, y_tr = load_data(cfg.data, "train")
    x_te, y_te = load_data(cfg.data, "test")
    data = TensorBatches(x_tr, y_tr, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    trainer = Trainer(model, cross_entropy_loss, data, cfg.train, out=out, tracker=tracker,
                      eval_fn=lambda m: {"test_acc": accuracy(m, x_te, y_te)},
                      run_config=to_dict(cfg), model_config=to_dict(cfg.model), quiet=quiet,
                      progress_desc=f"vision {cfg.model.name}")
    trainer.fit(resume=resume)
    model.eval()
    metrics = {"train_acc": accuracy(model, x_tr, y_tr), "test_acc": accuracy(model, x_te, y_te),
               "steps": trainer.step}
    (Path(out) / "eval.json").write_text(json.dumps(metrics, indent=2))
    return model, metrics
