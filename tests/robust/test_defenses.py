"""Adversarial training through the loop's hooks; TRADES by hand; the quick digits benchmark as a reproduction."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.config import from_dict
from frontierkit.data import TensorBatches
from frontierkit.robust.defenses import (AdversarialConfig, RobustRunConfig, kl_divergence, madry_transform,
                                         trades_adversary, trades_loss, training_setup)
from frontierkit.train import Trainer, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_trades_loss_by_hand():
    """Zhang et al. 2019 eq. 5: CE(f(x), y) + beta * mean_i sum_k p_k (log p_k - log q_k); beta = 0 is plain CE."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, x_adv, y = torch.randn(5, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    p, q = F.softmax(model(x), -1), F.softmax(model(x_adv), -1)
    kl = (p * (p.log() - q.log())).sum(-1).mean()
    loss, metrics = trades_loss(6.0)(model, (x, x_adv, y))
    assert torch.allclose(loss, F.cross_entropy(model(x), y) + 6.0 * kl, atol=1e-6)
    assert torch.allclose(trades_loss(0.0)(model, (x, x_adv, y))[0], F.cross_entropy(model(x), y), atol=1e-6)
    assert torch.allclose(kl_divergence(model(x), model(x)), torch.zeros(5), atol=1e-6)


def test_trades_adversary_raises_the_kl_inside_the_ball(cnn, test_digits):
    """Alg. 1's inner maximisation: x' in the eps-ball and the valid range, KL(f(x)||f(x')) far above the start's."""
    _, model = cnn
    x = test_digits[0][:32]
    torch.manual_seed(0)
    x_adv = trades_adversary(model, x, 0.2, 0.05, 10)
    with torch.no_grad():
        kl = kl_divergence(model(x), model(x_adv)).mean()
        kl0 = kl_divergence(model(x), model((x + 0.001 * torch.randn_like(x)).clamp(0, 1))).mean()
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    assert kl > 100 * kl0


class _Spy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("method", ["pgd", "trades"])
def test_batch_transform_gets_the_plain_module_and_restores_its_mode(test_digits, tmp_path, method):
    """The loop calls the hook with the user's module (not a wrapper), in train mode; the attack runs in eval mode
    and the mode is restored; PGD batches stay in the eps-ball; parameter grads come only from the loss."""
    x, y = test_digits
    cfg = AdversarialConfig(method=method, eps=0.1, steps=3)
    hooks, loss_fn = training_setup(cfg)
    seen = []
    inner = hooks.batch_transform

    def spy(module, batch, step):
        seen.append((module, module.training))
        out = inner(module, batch, step)
        seen.append(module.training)
        assert (out[-2] - batch[0]).abs().max() <= 0.1 + 1e-6
        return out

    hooks.batch_transform = spy
    model = _Spy()
    Trainer(model, loss_fn, TensorBatches(x, y, batch_size=32), TrainConfig(steps=2, log_every=1, warmup_steps=0),
            out=tmp_path, hooks=hooks).fit()
    assert seen[0] == (model, True) and seen[1] is True and len(seen) == 4


def test_eps_warmup_ramps_linearly():
    cfg = AdversarialConfig(eps=0.3, eps_warmup=10)
    assert [round(cfg.eps_at(s), 3) for s in (0, 4, 9, 50)] == [0.03, 0.15, 0.3, 0.3]
    assert AdversarialConfig(eps=0.3, steps=10).alpha_for(0.3) == pytest.approx(0.075)


def test_madry_transform_returns_pgd_examples(cnn, test_digits):
    """The hook's batch is PGD(x) on the module: the model is wrong on most of them at eps 0.2."""
    _, model = cnn
    x, y = test_digits
    x_adv, y2 = madry_transform(AdversarialConfig(eps=0.2, steps=10))(model, (x, y), 0)
    with torch.no_grad():
        assert (model(x_adv).argmax(-1) == y).float().mean() < 0.3 and torch.equal(y, y2)


def test_config_errors_name_the_field():
    with pytest.raises(Exception, match="adv.eps"):
        from_dict(RobustRunConfig, {"adv": {"eps": -1}})
    with pytest.raises(Exception, match="adv.method"):
        from_dict(RobustRunConfig, {"adv": {"method": "fgsm-at"}})


def _bench():
    spec = importlib.util.spec_from_file_location("robust_digits", ROOT / "benchmarks" / "robust_digits.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.learned
@pytest.mark.slow
def test_quick_benchmark_adversarial_training_raises_robust_accuracy(tmp_path):
    """Reproduction (benchmarks/robust_digits.py --quick, an MLP, eps 0.2 training): PGD-AT and TRADES keep at least
    15 points more worst-case accuracy than standard training at eps 0.1 and 0.2 (measured: ~25-35 points);
    every gradient-masking sanity check passes for all three models within 3% (4 samples in 150). The
    tolerance is measured, not tuned to one run: under ATEN_CPU_CAPABILITY=default the TRADES model's PGD-20
    was 2 samples weaker than FGSM at eps 0.1 (0.807 vs 0.793) — a fixed-step PGD can trail the single
    full-size FGSM step on a few samples without any masking; the per-sample `worst` column covers both."""
    info = _bench().run(quick=True, out=tmp_path)
    rows = {m: {r["eps"]: r["worst"] for r in v["rows"]} for m, v in info["models"].items()}
    for method in ("pgd", "trades"):
        for eps in (0.1, 0.2):
            assert rows[method][eps] >= rows["none"][eps] + 0.15, (method, eps, rows)
    from frontierkit.robust.evaluate import sanity_checks
    for m, v in info["models"].items():
        failed = [c for c in sanity_checks(v["rows"], None, tol=0.03) if not c["passed"]]
        assert not failed and all(c["passed"] for c in v["checks"] if "whole range" in c["check"]), (m, failed)
    assert (tmp_path / "robust_digits_quick.md").is_file()
