"""Distillation losses by hand (Hinton et al. 2015 with T^2), through the shared loop's extra-loss hook,
feature matching and token-level KL."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.compress.distill import Distiller, distill_loss, feature_loss, hard_loss, token_kl
from frontierkit.errors import ConfigError
from frontierkit.train import accumulate_gradients


def test_distill_loss_matches_hand_computed_hinton_formula():
    """alpha T^2 sum p_T log(p_T / q_T) + (1 - alpha) CE, written out in plain Python (1e-6)."""
    s, t, y = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[0.2, 3.0, -1.0]]), torch.tensor([1])
    T, alpha = 2.0, 0.5
    sm = lambda z: [math.exp(v / T) / sum(math.exp(u / T) for u in z) for v in z]  # noqa: E731
    p, q = sm(t[0].tolist()), sm(s[0].tolist())
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(math.exp(2.0) / sum(math.exp(v) for v in s[0].tolist()))
    assert distill_loss(s, t, y, T, alpha).item() == pytest.approx(alpha * T * T * kl + (1 - alpha) * ce, abs=1e-6)


def test_distill_loss_soft_gradient_scale_is_temperature_invariant():
    """Why T^2 (Hinton §2): for large T the soft gradient approaches (z_s - z_t) / K (zero-mean logits), so
    T^2 * KL keeps the same gradient magnitude as T grows (within 2% between T=20 and T=80)."""
    torch.manual_seed(0)
    t = torch.randn(1, 10)
    t -= t.mean()
    grads = []
    for T in (20.0, 80.0):
        s = torch.randn(1, 10, generator=torch.Generator().manual_seed(1))
        s = (s - s.mean()).requires_grad_()
        distill_loss(s, t, None, T, alpha=1.0).backward()
        grads.append(s.grad.norm().item())
    assert grads[1] == pytest.approx(grads[0], rel=0.02)


def test_distill_loss_without_labels_needs_alpha_one():
    with pytest.raises(ConfigError, match="labels=None needs alpha=1"):
        distill_loss(torch.zeros(1, 3), torch.zeros(1, 3), None, 2.0, 0.5)


def test_distiller_through_the_trainer_hook_gives_the_gradients_of_distill_loss():
    """Invariant: (1-alpha) CE task loss + Distiller extra loss through the loop's accumulate_gradients
    = autograd of distill_loss(student, teacher, y, T, alpha) on the same batch (1e-6); one student forward."""
    torch.manual_seed(0)
    student, teacher = nn.Linear(6, 4), nn.Linear(6, 4)
    x, y = torch.randn(8, 6), torch.randint(0, 4, (8,))
    d = Distiller(student, teacher, T=3.0, alpha=0.7)
    calls = []
    student.register_forward_hook(lambda *a: calls.append(1))
    accumulate_gradients(student, hard_loss(0.7, lambda m, b: F.cross_entropy(m(b[0]), b[1])), [(x, y)],
                         hooks=d.hooks())
    got = student.weight.grad.clone()
    student.zero_grad()
    distill_loss(student(x), teacher(x), y, 3.0, 0.7).backward()
    torch.testing.assert_close(got, student.weight.grad, atol=1e-6, rtol=0)
    assert len(calls) == 2                      # one forward in the loop, one in the reference


def test_feature_and_token_losses_by_hand():
    """FitNets hint = MSE after the regressor; token KL = mean over positions of sum p (log p - log q)."""
    s, t = torch.randn(3, 4), torch.randn(3, 8)
    reg = nn.Linear(4, 8)
    assert feature_loss(s, t, reg).item() == pytest.approx(((reg(s) - t) ** 2).mean().item(), abs=1e-6)
    with pytest.raises(ConfigError, match="pass a regressor"):
        feature_loss(s, t)
    zs, zt = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    p, lq = zt.softmax(-1), zs.log_softmax(-1)
    assert token_kl(zs, zt).item() == pytest.approx((p * (p.log() - lq)).sum(-1).mean().item(), abs=1e-6)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]).float()
    full = (p * (p.log() - lq)).sum(-1)
    assert token_kl(zs, zt, mask=mask).item() == pytest.approx(((full * mask).sum() / 3).item(), abs=1e-6)


@pytest.mark.learned
def test_distilled_tiny_llm_moves_toward_the_teacher():
    """LLM distillation (token-level forward KL through the Trainer hook): 30 steps bring the student's
    KL to the teacher below half its initial value."""
    from frontierkit.llm import Transformer, TransformerConfig
    torch.manual_seed(0)
    teacher = Transformer(TransformerConfig(vocab_size=64, n_layers=2, n_heads=4, d_model=32, max_seq_len=16))
    student = Transformer(TransformerConfig(vocab_size=64, n_layers=1, n_heads=2, d_model=16, max_seq_len=16))
    x = torch.randint(0, 64, (16, 16), generator=torch.Generator().manual_seed(0))
    d = Distiller(student, teacher, T=1.0, alpha=1.0, inputs=lambda b: b[0], tokens=True)
    kl0 = token_kl(student(x), teacher(x)).item()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        accumulate_gradients(student, hard_loss(1.0, lambda m, b: F.cross_entropy(m(b[0]).flatten(0, 1),
                                                                                   b[0].flatten())),
                             [(x,)], hooks=d.hooks())
        opt.step()
    assert token_kl(student(x), teacher(x)).item() < 0.5 * kl0
