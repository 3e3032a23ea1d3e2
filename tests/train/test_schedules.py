"""LR schedules against their closed forms (SGDR eq. 5 after linear warmup; WSD)."""
import math

import pytest

from frontierkit.train.schedules import lr_multiplier, warmup_cosine, warmup_stable_decay


@pytest.mark.parametrize("step", [0, 4, 9, 10, 35, 60, 99, 150])
def test_warmup_cosine_closed_form(step):
    warmup, total, m = 10, 100, 0.1
    if step < warmup:
        expected = (step + 1) / warmup
    else:
        p = min(1.0, (step - warmup) / (total - warmup))
        expected = m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))
    assert warmup_cosine(step, warmup=warmup, total=total, min_ratio=m) == pytest.approx(expected, abs=1e-12)


def test_cosine_landmarks():
    f = lambda s: warmup_cosine(s, warmup=10, total=110, min_ratio=0.0)  # noqa: E731
    assert f(9) == 1.0 and f(10) == 1.0
    assert f(60) == pytest.approx(0.5)        # half-way through the decay
    assert f(110) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(10, 110))


def test_wsd_is_flat_then_linear():
    f = lambda s: warmup_stable_decay(s, warmup=5, total=100, min_ratio=0.0, decay_fraction=0.2)  # noqa: E731
    assert f(0) == pytest.approx(0.2)
    assert all(f(s) == 1.0 for s in range(5, 80))
    assert f(90) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0)


def test_constant_and_unknown():
    assert lr_multiplier("constant", 50, warmup=10, total=100, min_ratio=0.1) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier("linear", 0, warmup=0, total=10, min_ratio=0.0)
