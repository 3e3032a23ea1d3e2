"""Toolformer in miniature (Schick et al. 2023): a small kit LLaMA trained on synthetic arithmetic word
problems whose answers contain calculator calls, ``[Calculator(a+b)→r]`` (Toolformer's API-call syntax, §2).
At inference, when the model writes ``→`` the calculator runs and its result is spliced in (Toolformer §2,
"Inference"); the model then copies the result as its answer.

Three conditions, scored by exact match per operand digit count (1-6):
- ``tool``: the annotated model, calculator on;
- ``no_tool``: the same model, calculator off (the model writes the result itself);
- ``plain``: a model trained on the same problems without annotations (``A:r``).
Characters are the tokens (digits one per token); the model is ``models.build("llm", ...)``, trained with
``frontierkit.train.Trainer`` on the answer tokens only."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from .calculator import evaluate, format_number

NAMES = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"]
ITEMS = ["apples", "coins", "books", "pens", "cards", "stamps"]
CHARS = "\n" + "".join(sorted(set(" .?:=[]()+-*→0123456789" + "".join(NAMES) + "".join(ITEMS)
                                   + "hasndgetsmorTtl?givwyLfbuxoCcalcr")))
PAD = 0


def make_problem(rng: random.Random, digits: int | None = None, max_digits: int = 6) -> tuple[str, str, int]:
    """(question, expression, result): +, - or * of two operands of ``digits`` digits (each random in
    1..max_digits if None)."""
    da, db = (digits, digits) if digits else (rng.randint(1, max_digits), rng.randint(1, max_digits))
    a = rng.randint(10 ** (da - 1) if da > 1 else 0, 10 ** da - 1)
    b = rng.randint(10 ** (db - 1) if db > 1 else 0, 10 ** db - 1)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    op = rng.choice("+-*")
    if op == "+":
        q = f"{name} has {a} {item} and gets {b} more. Total?"
    elif op == "-":
        a, b = max(a, b), min(a, b)
        q = f"{name} has {a} {item} and gives away {b}. Left?"
    else:
        q = f"{name} buys {a} boxes of {b} {item}. Total?"
    expr = f"{a}{op}{b}"
    return q, expr, int(evaluate(expr))


def answer_text(expr: str, result: int, annotated: bool) -> str:
    """``A:[Calculator(expr)→r]r`` (Toolformer-annotated) or ``A:r`` (plain), then a newline."""
    return f"A:[Calculator({expr})→{result}]{result}\n" if annotated else f"A:{result}\n"


class CharTokenizer:
    """Characters as token ids (0 = newline, also the padding/EOS)."""

    def __init__(self) -> None:
        self.stoi = {c: i for i, c in enumerate(CHARS)}

    @property
    def vocab_size(self) -> int:
        return len(CHARS)

    def encode(self, s: str) -> list[int]:
        return [self.stoi[c] for c in s]

    def decode(self, ids: list[int]) -> str:
        return "".join(CHARS[i] for i in ids)


@dataclass
class ProblemBatches:
    """Random problems as (ids, targets) rows: loss only on the answer (targets -100 elsewhere)."""
    annotated: bool
    batch_size: int = 32
    seq_len: int = 112
    seed: int = 0
    max_digits: int = 6
    units = "examples"

    def batch(self, i: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        rng = random.Random(self.seed * 1_000_003 + i * world + rank)
        tok = CharTokenizer()
        x = torch.full((self.batch_size, self.seq_len), PAD, dtype=torch.long)
        y = torch.full((self.batch_size, self.seq_len), -100, dtype=torch.long)
        for r in range(self.batch_size):
            q, expr, res = make_problem(rng, max_digits=self.max_digits)
            prompt, ans = tok.encode(q + "\n"), tok.encode(answer_text(expr, res, self.annotated))
            ids = (prompt + ans)[: self.seq_len + 1]
            x[r, : len(ids) - 1] = torch.tensor(ids[:-1])
            y[r, len(prompt) - 1: len(ids) - 1] = torch.tensor(ids[len(prompt):])
        n = int((y != -100).nonzero()[:, 1].max()) + 1                          # trim the common padding
        return x[:, :n], y[:, :n]

    def count(self, batch: Any) -> int:
        return batch[0].shape[0]


def loss_fn(model, batch) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens (Toolformer §2 fine-tunes with the LM objective)."""
    x, y = batch                                                                 # (B, T) each
    logits = model(x)                                                            # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100)


def model_config(d_model: int = 64, n_layers: int = 2) -> dict[str, Any]:
    return dict(family="llama", vocab_size=len(CHARS), n_layers=n_layers, n_heads=4, d_model=d_model,
                max_seq_len=128)


def train(annotated: bool, out: str | Path, steps: int = 1500, batch_size: int = 32, lr: float = 5e-3,
          seed: int = 0, quiet: bool = True, d_model: int = 64, n_layers: int = 2, max_digits: int = 6):
    """Train one model (annotated or plain) with the shared Trainer; returns the module.

    The recipe matters: copying the operands into the call is an induction-head skill that appears in a sudden
    drop of the loss (Olsson et al. 2022) after ~400-600 steps at batch 32 and lr 5e-3; 400 steps at batch 16 and
    lr 3e-3 (the first attempt) stop before it, and every condition then scores ~0."""
    from .. import models
    from ..train import TrainConfig, Trainer
    torch.manual_seed(seed)
    cfg = model_config(d_model, n_layers)
    model = models.build("llm", cfg)
    tcfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(100, steps // 10),
                       weight_decay=0.0, seed=seed, log_every=max(steps // 20, 1))
    data = ProblemBatches(annotated, batch_size, seed=seed, max_digits=max_digits)
    Trainer(model, loss_fn, data, tcfg, out=out, model_config=cfg,
            quiet=quiet, progress_desc="toolformer" + ("" if annotated else "-plain")).fit(resume=False)
    return model.eval()


@torch.inference_mode()
def solve(model, questions: list[str], use_tool: bool, annotated: bool, max_new: int = 64) -> list[str]:
    """Batched greedy answers; with ``use_tool`` every ``→`` is followed by the calculator's result + ``]``."""
    tok = CharTokenizer()
    arrow = tok.stoi["→"]
    rows = [tok.encode(q + "\nA:") for q in questions]
    starts = [len(r) for r in rows]
    done = [False] * len(rows)
    for _ in range(max_new):
        if all(done):
            break
        n = max(len(r) for r in rows)
        x = torch.tensor([r + [PAD] * (n - len(r)) for r in rows])               # (B, n) right-padded
        logits = model(x)                                                          # (B, n, V)
        last = logits[torch.arange(len(rows)), torch.tensor([len(r) - 1 for r in rows])]  # (B, V)
        nxt = last.argmax(-1).tolist()
        for i, t in enumerate(nxt):
            if done[i]:
                continue
            rows[i].append(t)
            if t == PAD or len(rows[i]) >= model.cfg.max_seq_len - 16:
                done[i] = True
            elif t == arrow and use_tool:
                text = tok.decode(rows[i][starts[i]:])
                expr = text[text.rfind("Calculator(") + len("Calculator("):].rstrip("→").rstrip(")")
                try:
                    result = format_number(evaluate(expr))
                except Exception:
                    result = "?"
                rows[i] += tok.encode(result + "]") if all(c in tok.stoi for c in result) else []
    return [tok.decode(r[s:]).split("\n")[0] for r, s in zip(rows, starts)]


def final_answer(text: str) -> str:
    """The answer after the last ``]`` (annotated) or the whole text (plain)."""
    return text.rsplit("]", 1)[-1].strip()


def evaluate_models(tool_model, plain_model, n: int = 50, seed: int = 123, digits=range(1, 7)) -> list[dict]:
    """Exact-match accuracy by operand digit count for tool / no_tool / plain."""
    rows = []
    for d in digits:
        rng = random.Random(seed + d)
        probs = [make_problem(rng, d) for _ in range(n)]
        qs, gold = [p[0] for p in probs], [str(p[2]) for p in probs]
        acc = {}
        for name, model, use_tool, ann in (("tool", tool_model, True, True), ("no_tool", tool_model, False, True),
                                           ("plain", plain_model, False, False)):
            outs = solve(model, qs, use_tool, ann)
            acc[name] = sum(final_answer(o) == g for o, g in zip(outs, gold)) / n
        rows.append({"digits": d, **acc})
    return rows
