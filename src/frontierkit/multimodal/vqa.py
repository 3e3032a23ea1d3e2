"""LLaVA's two-stage training on the shapes question/answer pairs (Liu et al. 2023 §4.2): the vision tower is
the CLIP trained here, the LLM a kit LLaMA (through the model registry) pretrained on the shapes text.
Stage 0 pretrains the LLM on captions and QA text; stage 1 trains the projector only (CLIP and LLM frozen);
stage 2 trains projector + LLM. The loss is on the answer tokens only. Measured: exact-match VQA accuracy on
held-out images per question type, against a text-only baseline (same LLM, no image) and "no stage 1"."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import require, to_dict
from ..train import TrainConfig, Trainer
from .clip import CLIP
from .data import BOS, IMAGE, PAD, SEP, Split, WordTokenizer
from .llava import Llava, LlavaConfig, generate, llava_loss
from .train import ShapesDataConfig, split

QUESTION_TYPES = ("shape", "color", "position", "size")
"""the shapes generator's four questions, in its order (what shape / what color / where / is it large)"""


def tiny_llama(vocab_size: int, d_model: int = 64, n_layers: int = 2, max_seq_len: int = 96) -> dict[str, Any]:
    """The LLM's config: a small LLaMA (RMSNorm, RoPE, SwiGLU, GQA) over the shapes words."""
    return {"family": "llama", "vocab_size": vocab_size, "n_layers": n_layers, "n_heads": 4, "n_kv_heads": 2,
            "d_model": d_model, "d_ff": 2 * d_model, "max_seq_len": max_seq_len}


@dataclass(frozen=True, kw_only=True)
class LlavaRunConfig:
    clip: str = ""
    """the trained CLIP (run or model folder) whose vision tower LLaVA uses"""
    data: ShapesDataConfig = field(default_factory=ShapesDataConfig)
    """shapes data (must match the CLIP run's held-out split)"""
    feature_layers: tuple[int, ...] = (-2,)
    """vision hidden states fed to the projector (LLaVA: the penultimate layer)"""
    select: str = "default"
    """"default" drops [CLS], "full" keeps it"""
    llm_width: int = 64
    """the LLaMA's d_model"""
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(steps=150, batch_size=64, lr=3e-3,
                                                                       warmup_steps=10, log_every=50))
    """stage 0: LLM pretraining on the shapes captions + QA text"""
    stage1: TrainConfig = field(default_factory=lambda: TrainConfig(steps=150, batch_size=64, lr=3e-3,
                                                                     warmup_steps=10, log_every=50))
    """stage 1: projector only"""
    stage2: TrainConfig = field(default_factory=lambda: TrainConfig(steps=250, batch_size=64, lr=2e-3,
                                                                     warmup_steps=10, log_every=50))
    """stage 2: projector + LLM"""
    eval_n: int = 400
    """held-out (image, question) pairs scored"""

    def __post_init__(self) -> None:
        require(self.select in ("default", "full"), "select", self.select, "choose default or full")
        require(self.eval_n > 0, "eval_n", self.eval_n, "must be > 0")


def pairs(s: Split) -> list[tuple[int, int, str, str]]:
    """(image index, question type, question, answer) for every QA pair of ``s``."""
    return [(i, t, q, a) for i, qa in enumerate(s.qa) for t, (q, a) in enumerate(qa)]


def encode_qa(tok: WordTokenizer, question: str, answer: str | None, n_image: int) -> tuple[list[int], int]:
    """[<bos>, <image> x n_image, question, <sep>, (answer, <eos>)] and the index where the answer starts."""
    prompt = [BOS] + [IMAGE] * n_image + tok.encode(question) + [SEP]
    return prompt + ([] if answer is None else tok.encode(answer) + [tok.eos]), len(prompt)


def qa_tensors(s: Split, tok: WordTokenizer, n_image: int) -> tuple[torch.Tensor, ...]:
    """Left-padded (image index, ids, valid, labels) for every QA pair; labels -100 outside the answer."""
    rows = [(i, *encode_qa(tok, q, a, n_image)) for i, _, q, a in pairs(s)]
    t = max(len(r[1]) for r in rows)
    ids = torch.full((len(rows), t), PAD, dtype=torch.long)
    labels = torch.full((len(rows), t), -100, dtype=torch.long)
    for j, (_, seq, start) in enumerate(rows):
        off = t - len(seq)
        ids[j, off:] = torch.tensor(seq)
        labels[j, off + start:] = torch.tensor(seq[start:])
    return torch.tensor([r[0] for r in rows]), ids, ids != PAD, labels


class _WithImages:
    """A batch source of (pixels, ids, valid, labels), pixels looked up by image index."""

    units = "samples"

    def __init__(self, images: torch.Tensor, batches: Any):
        self.images, self.inner = images, batches

    def batch(self, i: int, rank: int = 0, world: int = 1):
        idx, ids, valid, labels = self.inner.batch(i, rank, world)
        return self.images[idx], ids, valid, labels

    def count(self, batch: Any) -> int:
        return batch[1].shape[0]


def answer_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """LLaVA's objective: next-token CE on the answer tokens only; images dropped when the prompt has none."""
    pixels, ids, valid, labels = batch
    has_image = bool((ids == IMAGE).any())
    return llava_loss(model(ids, pixels if has_image else None, valid), labels)


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())


def text_stream(s: Split, tok: WordTokenizer) -> torch.Tensor:
    """Stage-0 corpus: every caption and every "question <sep> answer" as one token stream."""
    out: list[int] = []
    for cap, qa in zip(s.captions, s.qa):
        out += [BOS] + tok.encode(cap) + [tok.eos]
        for q, a in qa:
            out += [BOS] + tok.encode(q) + [SEP] + tok.encode(a) + [tok.eos]
    return torch.tensor(out)


def _fit(model: nn.Module, loss, data, cfg: TrainConfig, out: Path, quiet: bool, desc: str) -> None:
    Trainer(model, loss, data, cfg, out=out, quiet=quiet, progress_desc=desc).fit(resume=False)


def _set_trainable(model: Llava, projector: bool, llm: bool) -> None:
    for p in model.vision.parameters():
        p.requires_grad_(False)
    for p in model.projector.parameters():
        p.requires_grad_(projector)
    for p in model.llm.parameters():
        p.requires_grad_(llm)


@torch.no_grad()
def vqa_accuracy(model: Llava, s: Split, n: int, with_image: bool = True, batch: int = 100) -> dict[str, float]:
    """Exact match of greedy answers on the first ``n`` (image, question) pairs of ``s``, per question type."""
    tok = WordTokenizer()
    ps = pairs(s)[:n]
    n_image = model.cfg.n_image_tokens if with_image else 0
    hits = {t: [] for t in range(len(QUESTION_TYPES))}
    for b in range(0, len(ps), batch):
        chunk = ps[b:b + batch]
        prompts = [encode_qa(tok, q, None, n_image)[0] for _, _, q, _ in chunk]
        t = max(map(len, prompts))
        ids = torch.full((len(chunk), t), PAD, dtype=torch.long)
        for j, p in enumerate(prompts):
            ids[j, t - len(p):] = torch.tensor(p)
        pixels = s.images[[i for i, *_ in chunk]] if with_image else None
        gen = generate(model, ids, pixels, 3, ids != PAD, stop_tokens=(tok.eos,), pad_id=PAD)[:, t:]
        for (_, qt, _, a), row in zip(chunk, gen.tolist()):
            hits[qt].append(tok.decode(row[:row.index(tok.eos)] if tok.eos in row else row) == a)
    out = {QUESTION_TYPES[k]: sum(v) / max(len(v), 1) for k, v in hits.items()}
    out["overall"] = sum(sum(v) for v in hits.values()) / len(ps)
    return out


def new_llava(clip: CLIP, cfg: LlavaRunConfig, llm_state: dict[str, torch.Tensor]) -> Llava:
    """A Llava with the CLIP's vision tower and the pretrained LLM's weights (a fresh projector)."""
    from .llava import build_llava
    tok = WordTokenizer()
    lcfg = LlavaConfig(vision=clip.cfg.vision, llm=tiny_llama(tok.vocab_size, cfg.llm_width),
                       feature_layers=cfg.feature_layers, select=cfg.select,  # type: ignore[arg-type]
                       image_token_id=IMAGE)
    model = build_llava(to_dict(lcfg))
    model.vision.load_state_dict(clip.visual.state_dict())
    model.llm.load_state_dict(llm_state)
    return model


RUNS = ("llava", "text_only", "no_stage1")
"""LLaVA (stages 1 + 2), the text-only baseline (same LLM, no image), the ablation without stage 1"""


def train_llava(cfg: LlavaRunConfig, out: str | Path, clip: CLIP | None = None, quiet: bool = True,
                baselines: tuple[str, ...] = RUNS[1:]) -> tuple[Llava, dict[str, Any]]:
    """Stage 0 (LLM on text), stage 1 (projector), stage 2 (projector + LLM); then the chosen baselines."""
    from .. import models
    from ..data import TensorBatches, TokenBatches

    out = Path(out)
    clip = clip if clip is not None else models.load(cfg.clip, kind="clip")
    tok = WordTokenizer()
    tr, held = split(cfg.data, "train"), split(cfg.data, "held_out")
    torch.manual_seed(cfg.pretrain.seed)
    llm = models.build("llm", tiny_llama(tok.vocab_size, cfg.llm_width))
    _fit(llm, lm_loss, TokenBatches(text_stream(tr, tok), batch_size=cfg.pretrain.batch_size, seq_len=32,
                                    seed=cfg.pretrain.seed), cfg.pretrain, out / "stage0", quiet, "llava stage 0")
    llm_state = {k: v.clone() for k, v in llm.state_dict().items()}

    def run(stage1: bool, with_image: bool, name: str) -> tuple[Llava, dict[str, float]]:
        model = new_llava(clip, cfg, llm_state)
        n_image = model.cfg.n_image_tokens if with_image else 0
        idx, ids, valid, labels = qa_tensors(tr, tok, n_image)
        data = _WithImages(tr.images, TensorBatches(idx, ids, valid, labels, batch_size=cfg.stage2.batch_size,
                                                    seed=cfg.stage2.seed))
        if stage1:
            _set_trainable(model, projector=True, llm=False)
            _fit(model, answer_loss, data, cfg.stage1, out / name / "stage1", quiet, f"llava {name} stage 1")
        _set_trainable(model, projector=with_image, llm=True)
        _fit(model, answer_loss, data, cfg.stage2, out / name / "stage2", quiet, f"llava {name} stage 2")
        model.eval()
        return model, vqa_accuracy(model, held, cfg.eval_n, with_image)

    model, metrics = run(True, True, "llava")
    for p in model.parameters():
        p.requires_grad_(True)
    models.save(model, out / "model", run=to_dict(cfg))
    results: dict[str, Any] = {"llava": metrics}
    if "text_only" in baselines:
        results["text_only"] = run(False, False, "text_only")[1]
    if "no_stage1" in baselines:
        results["no_stage1"] = run(False, True, "no_stage1")[1]
    (out / "eval.json").write_text(json.dumps(results, indent=2))
    return model, results


def quick_llava_config(**over: Any) -> LlavaRunConfig:
    """A few-step configuration for tests and the quick tour."""
    small = lambda n, lr: TrainConfig(steps=n, batch_size=32, lr=lr, warmup_steps=5, log_every=1000)  # noqa: E731
    return replace(LlavaRunConfig(pretrain=small(60, 3e-3), stage1=small(150, 3e-3), stage2=small(200, 2e-3),
                                  eval_n=200), **over)

