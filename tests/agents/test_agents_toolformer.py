"""Toolformer in miniature (Schick et al. 2023). Mechanics: training rows mask everything but the answer; at
inference the calculator's result is spliced after ``→`` (§2) -- a scripted stand-in model that writes a wrong
result gets the right answer only with the tool. Learning: a quick variant of benchmarks/agents_toolformer.py
learns to write the right calls (learned threshold)."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
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


@pytest.mark.learned
@pytest.mark.slow
def test_quick_toolformer_learns_to_call_the_calculator(tmp_path):
    """Learned threshold (quick variant of benchmarks/agents_toolformer.py: operands of 1-2 digits, 400 steps,
    batch 32, lr 5e-3, ~1 min): with the calculator, exact match on 1-digit problems >= 0.8 (measured 1.0; it
    passes 0.8 about 100 steps earlier, so the threshold holds across CPU kernel sets) and the written calls are
    the question's own expressions."""
    torch.set_num_threads(1)
    model = tf.train(True, tmp_path, steps=400, batch_size=32, lr=5e-3, max_digits=2)
    rng = random.Random(7)
    probs = [tf.make_problem(rng, 1) for _ in range(40)]
    outs = tf.solve(model, [p[0] for p in probs], use_tool=True, annotated=True)
    acc = sum(tf.final_answer(o) == str(p[2]) for o, p in zip(outs, probs)) / len(probs)
    calls = sum(o.startswith(f"[Calculator({p[1]})→") for o, p in zip(outs, probs)) / len(probs)
    print(f"toolformer quick: 1-digit exact match with the tool {acc:.3f}, right calls {calls:.3f}")
    assert acc >= 0.8 and calls >= 0.8, (acc, calls, outs[:3])
