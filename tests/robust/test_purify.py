"""Purification: feature squeezing by hand and against scipy, BPDA, EOT, and gradient masking made visible."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frontierkit.errors import ConfigError
from frontierkit.robust.attacks import pgd
from frontierkit.robust.evaluate import large_eps_accuracy
from frontierkit.robust.purify import (BitDepth, Compose, GaussianNoise, MedianSmoothing, Purified, as_purifier,
                                       parse_purifier)


def _acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def test_bit_depth_levels_by_hand():
    """Xu et al. 2018 §4.1: 1 bit maps to {0, 1} at 0.5; 2 bits to multiples of 1/3; other ranges rescale."""
    x = torch.tensor([0.0, 0.2, 0.49, 0.51, 0.8, 1.0]).view(1, 1, 1, 6)
    assert BitDepth(1)(x).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(BitDepth(2)(x).flatten(), torch.tensor([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1]))
    assert BitDepth(1, -1.0, 1.0)(torch.tensor([-0.9, 0.1]).view(1, 1, 1, 2)).flatten().tolist() == [-1, 1]


@pytest.mark.parametrize("k", [2, 3])
def test_median_smoothing_matches_scipy_median_filter(test_digits, k):
    """Oracle: scipy.ndimage.median_filter(size=(1, 1, k, k), mode="reflect") as in Xu et al.'s code; exact."""
    from scipy.ndimage import median_filter
    x = test_digits[0][:8] + 0.01 * torch.rand(8, 1, 8, 8)              # break ties: compare values exactly
    ref = median_filter(x.numpy(), size=(1, 1, k, k), mode="reflect")
    np.testing.assert_array_equal(MedianSmoothing(k)(x).numpy(), ref)


def test_bpda_forward_is_exact_and_backward_is_identity(cnn, test_digits):
    """BPDA (Athalye et al. 2018 §4.1): same logits as the defence; d purify/dx = I, so the input gradient equals
    the classifier's gradient at the purified input."""
    _, model = cnn
    x = test_digits[0][:4].clone().requires_grad_(True)
    bpda = Purified(model, BitDepth(2), bpda=True)
    with torch.no_grad():
        assert torch.equal(bpda(x), Purified(model, BitDepth(2))(x))
    bpda(x).sum().backward()
    xp = BitDepth(2)(x.detach()).requires_grad_(True)
    model(xp).sum().backward()
    assert torch.equal(x.grad, xp.grad)


def test_squeezing_masks_gradients_and_bpda_breaks_it(cnn, test_digits):
    """Gradient masking made visible: through rounding's zero gradient PGD (from x, no random start) cannot move,
    so accuracy at eps = the whole range stays high and the sanity check fails; with BPDA the same attack breaks
    the defence. (With a random start at that eps the noise alone fools the model, hiding the masking.)"""
    _, model = cnn
    x, y = test_digits
    attack = lambda m, xb, yb, e: pgd(m, xb, yb, e, steps=20, random_start=False)  # noqa: E731
    naive, bpda = Purified(model, BitDepth(3)), Purified(model, BitDepth(3), bpda=True)
    assert large_eps_accuracy(naive, x, y, attack) > 0.8
    assert large_eps_accuracy(bpda, x, y, attack) <= 0.02
    adv_naive = pgd(naive, x, y, 0.2, steps=20, generator=torch.Generator().manual_seed(0))
    adv_bpda = pgd(bpda, x, y, 0.2, steps=20, generator=torch.Generator().manual_seed(0))
    assert _acc(naive, adv_bpda, y) < _acc(naive, adv_naive, y) - 0.3


def test_eot_is_stronger_on_a_randomised_purifier(cnn, test_digits):
    """EOT (Athalye et al. 2018 §4.3): averaging 16 gradient draws attacks Gaussian-noise purification better than
    one draw; accuracy judged as the mean over 8 noisy predictions (seeded)."""
    _, model = cnn
    x, y = test_digits
    defended = Purified(model, GaussianNoise(0.3))

    def acc(adv):
        torch.manual_seed(123)
        return sum(_acc(defended, adv, y) for _ in range(8)) / 8

    torch.manual_seed(0)
    one = pgd(defended, x, y, 0.1, steps=10, eot=1)
    torch.manual_seed(0)
    eot = pgd(defended, x, y, 0.1, steps=10, eot=16)
    assert acc(eot) < acc(one) - 0.03


def test_any_denoiser_plugs_in_through_as_purifier(cnn, test_digits):
    """A learned denoiser (here a 3x3 averaging conv) wrapped with as_purifier: composes, differentiable end to end."""
    _, model = cnn
    x, y = test_digits
    den = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    nn.init.constant_(den.weight, 1 / 9)
    p = Compose(as_purifier(den), BitDepth(4))
    assert not p.differentiable and not p.randomized
    adv = pgd(Purified(model, p, bpda=True), x, y, 0.2, steps=10)
    assert (adv - x).abs().max() <= 0.2 + 1e-6 and _acc(Purified(model, p), adv, y) < 0.5


def test_parse_purifier_specs_and_errors():
    p = parse_purifier("bits:3+median:2")
    assert isinstance(p, Compose) and [type(q).__name__ for q in p.purifiers] == ["BitDepth", "MedianSmoothing"]
    assert parse_purifier("none") is None and parse_purifier("noise:0.2").randomized
    for bad in ("bits:x", "blur:3", "bits:0", "median:1"):
        with pytest.raises(ConfigError):
            parse_purifier(bad)
