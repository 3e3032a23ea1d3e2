"""Toolformer in miniature, mechanics (no training here: see benchmarks/agents_toolformer.py): training rows
mask everything but the answer; at inference the calculator's result is spliced after ``→`` (Schick et al.
2023 §2) -- a scripted stand-in model that writes a wrong result gets the right answer only with the tool."""
from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from frontierkit.agents import toolformer as tf


def test_problems_and_rows():
    rng = random.Random(0)
    for d in range(1, 7):
        q, expr, res = tf.make_problem(rng, d)
        a, b = (int(x) for x in expr.replace("+", " ").replace("-", " ").replace("*", " ").split())
        assert len(str(max(a, b))) == d and res == eval(expr, {})   # test-side check of the generator
    x, y = tf.ProblemBatches(True, batch_size=4, seed=1).batch(0)
    tok = tf.CharTokenizer()
    row = tok.decode([t for t in y[0].tolist() if t != -100])
    assert row.startswith("A:[Calculator(") and "→" in row and row.endswith("\n")
    assert (x[:, 1:] == torch.where(y[:, :-1] == -100, x[:, 1:], y[:, :-1])).all()   # y is x shifted


class Scripted(torch.nn.Module):
    """Writes ``script`` after 'A:' one char per step, whatever the context (a wrong result after →)."""

    def __init__(self, script: str):
        super().__init__()
        self.tok = tf.CharTokenizer()
        self.script = self.tok.encode(script)
        self.cfg = SimpleNamespace(max_seq_len=128)

    def forward(self, x):
        b, t = x.shape
        logits = torch.zeros(b, t, self.tok.vocab_size)
        colon = self.tok.stoi[":"]
        for i in range(b):
            row = x[i].tolist()
            a = max(j for j, c in enumerate(row) if c == colon)          # the "A:" colon
            for p in range(a, t):
                k = p - a
                nxt = self.script[k] if k < len(self.script) else 0
                if k >= len(self.script) or row[a + 1: p + 1] == self.script[:k]:
                    logits[i, p, nxt] = 1.0
                else:                                                     # after a splice: continue after ']'
                    tail = self.script[self.script.index(self.tok.stoi["]"]) + 1:]
                    done = len(row[a + 1: p + 1]) - row[a + 1: p + 1].index(self.tok.stoi["]"]) - 1 \
                        if self.tok.stoi["]"] in row[a + 1: p + 1] else 0
                    logits[i, p, tail[done] if done < len(tail) else 0] = 1.0
        return logits


def test_calculator_spliced_after_arrow():
    q = "Ann has 123456 coins and gets 654321 more. Total?"
    model = Scripted("[Calculator(123456+654321)→999]999\n")       # the model's own arithmetic is wrong
    with_tool = tf.solve(model, [q], use_tool=True, annotated=True)[0]
    without = tf.solve(model, [q], use_tool=False, annotated=True)[0]
    assert with_tool.startswith("[Calculator(123456+654321)→777777]") and without.endswith("999")
    assert tf.final_answer(without) == "999"
