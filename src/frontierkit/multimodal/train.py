"""Training CLIP on the shapes captions with the shared loop, and measuring it: zero-shot classification by
prompts (Radford et al. 2021 §3.1.2), image<->text retrieval recall@K, and the reference line — a supervised
classifier of the same vision tower."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config import require, to_dict
from ..train import Hooks, TrainConfig, Trainer
from .clip import CLIP, CLIPConfig, CLIPTextConfig, CLIPVisionConfig, clamp_logit_scale, clip_loss
from .data import (POSITIONS, TEMPLATES, Split, WordTokenizer, class_label, class_names, class_prompts, split_of)
from .zeroshot import ZeroShotClassifier


@dataclass(frozen=True, kw_only=True)
class ShapesDataConfig:
    n: int = 6000
    """images generated (split by held-out combination)"""
    size: int = 48
    """image side in pixels (48 = 3 x 16: with 16-px patches the ViT's patch grid is the generator's 3x3 position
    grid, so each shape lies, up to jitter, in one patch)"""
    seed: int = 0
    """generation and held-out seed"""
    held_out: float = 0.2
    """fraction of colour x shape x position combinations never seen in training"""
    template_mix: float = 0.25
    """fraction of training captions replaced by a short template ("a photo of a red circle")"""

    def __post_init__(self) -> None:
        require(self.n >= 100, "data.n", self.n, "must be >= 100")
        require(0 < self.held_out < 1, "data.held_out", self.held_out, "must be in (0, 1)")
        require(0 <= self.template_mix <= 1, "data.template_mix", self.template_mix, "must be in [0, 1]")


def default_clip_model() -> CLIPConfig:
    tok = WordTokenizer()
    return CLIPConfig(vision=CLIPVisionConfig(image_size=48, patch_size=16, width=64, n_layers=2, n_heads=4,
                                              mlp_hidden=128),
                      text=CLIPTextConfig(vocab_size=tok.vocab_size, context_length=12, width=64, n_layers=2,
                                          n_heads=4, mlp_hidden=128, eos_token_id=tok.eos), embed_dim=64)


def quick_clip_config(steps: int = 150, n: int = 3000) -> "ClipRunConfig":
    """A small, fast CLIP run (the default model, a few hundred steps, fewer images) for tests and the quick tour."""
    return ClipRunConfig(data=ShapesDataConfig(n=n),
                         train=replace(default_clip_train(), steps=steps, warmup_steps=min(30, steps // 5),
                                               log_every=1000))


def default_clip_train() -> TrainConfig:
    return TrainConfig(steps=800, batch_size=64, lr=1e-3, warmup_steps=30, weight_decay=0.05, log_every=50)


@dataclass(frozen=True, kw_only=True)
class ClipRunConfig:
    model: CLIPConfig = field(default_factory=default_clip_model)
    """CLIP architecture (text vocabulary = the shapes words)"""
    data: ShapesDataConfig = field(default_factory=ShapesDataConfig)
    """shapes data and the held-out split"""
    train: TrainConfig = field(default_factory=default_clip_train)
    """optimizer and loop"""

    def __post_init__(self) -> None:
        tok = WordTokenizer()
        require(self.model.text.vocab_size == tok.vocab_size, "model.text.vocab_size", self.model.text.vocab_size,
                f"the shapes vocabulary has {tok.vocab_size} words")
        require(self.model.text.eos_token_id == tok.eos, "model.text.eos_token_id", self.model.text.eos_token_id,
                f"the shapes tokenizer's <eos> is {tok.eos}")
        require(self.model.vision.image_size == self.data.size, "model.vision.image_size",
                self.model.vision.image_size, f"must equal data.size={self.data.size}")


def split(cfg: ShapesDataConfig, name: str) -> Split:
    return split_of(name, cfg.n, cfg.size, cfg.seed, cfg.held_out)


def training_texts(s: Split, mix: float, seed: int) -> list[str]:
    """Each image's caption, a fixed ``mix`` fraction swapped for a short template of the same colour/shape."""
    g = torch.Generator().manual_seed(seed)
    swap, which = torch.rand(len(s), generator=g) < mix, torch.randint(len(TEMPLATES), (len(s),), generator=g)
    names = class_names()
    out = []
    for i, cap in enumerate(s.captions):
        color, shape = names[int(class_label({k: v[i:i + 1] for k, v in s.labels.items()}))]
        out.append(TEMPLATES[int(which[i])].format(color=color, shape=shape) if swap[i] else cap)
    return out


def contrastive_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]):
    """Symmetric InfoNCE over a batch of (image, caption) pairs; reports the temperature exp(t)."""
    pixels, ids, valid = batch
    logits = model(pixels, ids, valid)                                         # (B, B)
    acc = (logits.argmax(-1) == torch.arange(len(logits))).float().mean().item()
    scale = model.module.logit_scale if hasattr(model, "module") else model.logit_scale
    return clip_loss(logits), {"acc_i2t": acc, "temperature_inv": scale.exp().item()}


@torch.no_grad()
def _embed(model: CLIP, images: torch.Tensor, texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    tok = WordTokenizer()
    ids, valid = tok.batch(texts, length)
    img = torch.cat([model.encode_image(images[i:i + 256]) for i in range(0, len(images), 256)])
    txt = torch.cat([model.encode_text(ids[i:i + 512], valid[i:i + 512]) for i in range(0, len(ids), 512)])
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)                  # (N, E), (M, E)


def zero_shot_classifier(model: CLIP, data: ShapesDataConfig | None = None,
                         template: str = "ensemble") -> ZeroShotClassifier:
    """CLIP's zero-shot classifier over the 24 (colour, shape) classes (§3.1.2), prompts per ``template``."""
    names = class_names()
    zs = ZeroShotClassifier(model, [f"{c} {s}" for c, s in names], to_dict(data) if data else None)
    return zs.set_prompts([class_prompts(c, s, template) for c, s in names], WordTokenizer(),
                          model.cfg.text.context_length).eval()


@torch.no_grad()
def zero_shot(model: CLIP, s: Split, template: str = "ensemble") -> dict[str, float]:
    """Zero-shot accuracy on ``s``: the (colour, shape) class, its colour and shape parts, and the position
    (9 classes, each prompt-ensembled over every colour, shape and size)."""
    model.eval()
    pred = zero_shot_classifier(model, template=template)(s.images).argmax(-1)  # (N,)
    n_shapes = 4
    truth = class_label(s.labels)
    out = {"class": (pred == truth).float().mean().item(),
           "color": (pred // n_shapes == s.labels["color"]).float().mean().item(),
           "shape": (pred % n_shapes == s.labels["shape"]).float().mean().item()}
    from ..data.shapes import SIZES, caption
    prompts = [[caption(sh, c, z, p) for c, sh in class_names() for z in SIZES] for p in POSITIONS]
    zs = ZeroShotClassifier(model, list(POSITIONS)).set_prompts(prompts, WordTokenizer(), model.cfg.text.context_length)
    out["position"] = (zs(s.images).argmax(-1) == s.labels["position"]).float().mean().item()
    return out


@torch.no_grad()
def retrieval(model: CLIP, s: Split, n: int = 256, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Image->text and text->image recall@K over the first ``n`` pairs of ``s``; a retrieved caption counts
    when its text equals the query's own (identical captions are indistinguishable)."""
    model.eval()
    n = min(n, len(s))
    caps = s.captions[:n]
    img, txt = _embed(model, s.images[:n], caps, model.cfg.text.context_length)
    sim = img @ txt.T                                                          # (n, n)
    same = torch.tensor([[a == b for b in caps] for a in caps])                # (n, n) caption equality
    out = {}
    for k in ks:
        top_t = sim.topk(k, dim=1).indices                                     # (n, k) texts per image
        top_i = sim.T.topk(k, dim=1).indices                                   # (n, k) images per text
        out[f"i2t_r@{k}"] = same.gather(1, top_t).any(1).float().mean().item()
        out[f"t2i_r@{k}"] = same.gather(1, top_i).any(1).float().mean().item()
    return out


def evaluate(model: CLIP, data: ShapesDataConfig) -> dict[str, float]:
    held = split(data, "held_out")
    zs = zero_shot(model, held)
    r = retrieval(model, held)
    return {**{f"zeroshot_{k}": v for k, v in zs.items()}, **r}


def train_clip(cfg: ClipRunConfig, out: str | Path, *, tracker: Any = None, quiet: bool = True,
               resume: bool = False) -> tuple[CLIP, dict[str, float]]:
    """Contrastive training on the training combinations; writes <out>/model, <out>/zeroshot and eval.json."""
    from .. import models
    from ..data import TensorBatches

    torch.manual_seed(cfg.train.seed)
    model = CLIP(cfg.model)
    tr = split(cfg.data, "train")
    ids, valid = WordTokenizer().batch(training_texts(tr, cfg.data.template_mix, cfg.data.seed),
                                       cfg.model.text.context_length)
    data = TensorBatches(tr.images, ids, valid, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    hooks = Hooks(grad_transform=lambda m, step: clamp_logit_scale(m))      # ln 100 cap before every step
    trainer = Trainer(model, contrastive_loss, data, cfg.train, out=out, tracker=tracker, hooks=hooks,
                      eval_fn=(lambda m: evaluate(m, cfg.data)) if cfg.train.eval_every else None,
                      run_config=to_dict(cfg),
                      model_config=to_dict(cfg.model), quiet=quiet, progress_desc="clip")
    trainer.fit(resume=resume)
    clamp_logit_scale(model)                                                   # ... and after the last one
    models.save(model, Path(out) / "model", run=to_dict(cfg))
    model.eval()
    metrics = {**evaluate(model, cfg.data), "steps": trainer.step, "logit_scale": model.logit_scale.item()}
    models.save(zero_shot_classifier(model, cfg.data), Path(out) / "zeroshot", run=to_dict(cfg))
    (Path(out) / "eval.json").write_text(json.dumps(metrics, indent=2))
    return model, metrics


class TowerClassifier(nn.Module):
    """The reference line: CLIP's vision tower + a linear head, trained with labels (cross-entropy)."""

    def __init__(self, cfg: CLIPVisionConfig, n_classes: int):
        super().__init__()
        from .clip import VisionTower
        self.tower = VisionTower(cfg)
        self.head = nn.Linear(cfg.width, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.tower(images))                                   # (N, K)


def _ce_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
    x, y = batch
    return F.cross_entropy(model(x), y)


def train_supervised(cfg: ClipRunConfig, out: str | Path, quiet: bool = True,
                     target: str = "class") -> dict[str, float]:
    """The same vision tower trained with labels of the training combinations; held-out accuracy. ``target``
    "class" = the 24 (colour, shape) classes (the reference line), "shape" = the 4 shapes alone (a probe of
    whether the tower can see shape; reports training accuracy too)."""
    from ..data import TensorBatches

    if target not in ("class", "shape"):
        raise ValueError(f"target={target!r}: choose class or shape")
    torch.manual_seed(cfg.train.seed)
    label = class_label if target == "class" else (lambda labels: labels["shape"])
    n_shapes = 4
    model = TowerClassifier(cfg.model.vision, len(class_names()) if target == "class" else n_shapes)
    tr, held = split(cfg.data, "train"), split(cfg.data, "held_out")
    data = TensorBatches(tr.images, label(tr.labels), batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    Trainer(model, _ce_loss, data, replace(cfg.train, eval_every=0), out=out, quiet=quiet,
            progress_desc="supervised").fit(resume=False)
    model.eval()
    with torch.no_grad():
        pred = model(held.images).argmax(-1)
        pred_tr = model(tr.images[:1000]).argmax(-1)
    if target == "shape":
        return {"shape": (pred == held.labels["shape"]).float().mean().item(),
                "train_shape": (pred_tr == tr.labels["shape"][:1000]).float().mean().item()}
    return {"class": (pred == class_label(held.labels)).float().mean().item(),
            "color": (pred // n_shapes == held.labels["color"]).float().mean().item(),
            "shape": (pred % n_shapes == held.labels["shape"]).float().mean().item()}
