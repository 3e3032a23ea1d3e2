"""DP-SGD: per-example gradients vs Opacus' GradSampleModule, clipping and noise as Algorithm 1,
Poisson sampling, BatchNorm refusal/swap, the ε budget stop, and a short private run that learns."""
import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.errors import ConfigError
from frontierkit.privacy import (DPConfig, DPRunConfig, PoissonBatches, clipped_sum, per_sample_grads,
                                 rdp_epsilon, replace_batchnorm, train_dp)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 10))


def _opacus_grad_samples(model, x, y):
    from opacus import GradSampleModule
    gsm = GradSampleModule(model, loss_reduction="mean")
    F.cross_entropy(gsm(x), y).backward()
    return {n.removeprefix("_module."): p.grad_sample for n, p in gsm.named_parameters()}


@pytest.mark.filterwarnings("ignore:Full backward hook:UserWarning")
@pytest.mark.parametrize("build", [_mlp, _cnn], ids=["mlp", "cnn_groupnorm"])
def test_per_sample_grads_match_opacus_grad_sample_module(build):
    """Oracle: opacus.GradSampleModule(loss_reduction="mean").grad_sample; fp32, atol 1e-6."""
    torch.manual_seed(1)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    ours = per_sample_grads(build(), F.cross_entropy, x, y)
    theirs = _opacus_grad_samples(build(), x, y)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].shape == (6, *theirs[name].shape[1:])
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=1e-5)


def test_clipped_sum_is_algorithm_1_clip_then_sum():
    """Each example's whole gradient is scaled to norm <= C before the sum (Abadi 2016 Alg. 1), 1e-6."""
    torch.manual_seed(2)
    x, y = torch.rand(5, 1, 8, 8), torch.randint(0, 10, (5,))
    g = per_sample_grads(_mlp(), F.cross_entropy, x, y)
    C = 0.05
    out = clipped_sum(g, C)
    for n in g:
        expected = sum(g[n][i] * min(1.0, C / torch.cat([v[i].flatten() for v in g.values()]).norm().item())
                       for i in range(5))
        torch.testing.assert_close(out[n], expected, atol=1e-6, rtol=1e-5)


def test_poisson_batches_sample_each_example_with_rate_q():
    """Lot sizes are Binomial(N, q): the mean over 400 lots is qN within 3 %, and a lot is a pure function of i."""
    x = torch.arange(1000.0)
    data = PoissonBatches(x, sample_rate=0.05, seed=3)
    sizes = torch.tensor([data.batch(i)[0].shape[0] for i in range(400)], dtype=torch.float32)
    assert abs(sizes.mean().item() - 50) < 1.5 and sizes.std().item() > 3
    assert torch.equal(data.batch(7)[0], data.batch(7)[0])


def test_batchnorm_is_refused_with_the_fix_or_swapped_for_groupnorm():
    """BatchNorm mixes examples: a ConfigError names GroupNorm; replace_batchnorm swaps it (recorded transform)."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 36, 10))
    x, y = torch.rand(3, 1, 8, 8), torch.randint(0, 10, (3,))
    with pytest.raises(ConfigError, match="GroupNorm"):
        per_sample_grads(model, F.cross_entropy, x, y)
    replace_batchnorm(model)
    assert isinstance(model[1], nn.GroupNorm) and model.frontier_transforms[0]["name"] == "privacy.groupnorm"
    assert per_sample_grads(model, F.cross_entropy, x, y)["1.weight"].shape == (3, 8)


def _quick(out, steps=60, batch_size=96, **dp):
    cfg = DPRunConfig()
    cfg = replace(cfg, train=replace(cfg.train, steps=steps, batch_size=batch_size, log_every=30), dp=DPConfig(**dp))
    return train_dp(cfg, out)[1]


@pytest.mark.learned
def test_short_dp_run_learns_and_reports_the_accountants_epsilon(tmp_path):
    """40 DP-SGD steps (Poisson lots of 512 expected, ε = 8, δ = 1e-5) on digits: test accuracy well above
    chance (0.1) — measured 0.84 under default and avx2 kernels, asserted > 0.6; the ε reported equals
    Opacus' RDPAccountant for (σ, q, steps) to 1e-6 relative."""
    from opacus.accountants import RDPAccountant
    torch.set_num_threads(1)
    rec = _quick(tmp_path / "dp", steps=40, batch_size=512, epsilon=8.0)
    assert rec["test_acc"] > 0.6, rec
    acc = RDPAccountant()
    acc.history = [(rec["noise_multiplier"], rec["sample_rate"], rec["steps"])]
    assert abs(rec["epsilon"] - acc.get_epsilon(1e-5)) < 1e-6 * rec["epsilon"]
    assert rec["epsilon"] <= 8.0 and rec["steps"] == 40 and not rec["stopped_by_budget"]


def test_a_run_refuses_to_step_past_its_budget_and_keeps_its_checkpoint(tmp_path):
    """With σ fixed, a budget that 60 steps would exceed stops at the last step within it: ε <= budget,
    the checkpoint and model/ are whole, and resuming with more steps takes none."""
    from frontierkit import models
    torch.set_num_threads(1)
    from frontierkit.data.digits import load_digits
    budget = rdp_epsilon(1.0, 96 / len(load_digits("train")[1]), 12, 1e-5) + 1e-9   # exactly 12 steps fit
    rec = _quick(tmp_path / "dp", epsilon=budget, noise_multiplier=1.0)
    assert rec["stopped_by_budget"] and rec["steps"] == 12 and rec["epsilon"] <= budget
    assert (tmp_path / "dp" / "checkpoints" / "latest").exists()
    loaded = models.open_model(tmp_path / "dp", tags="classifier")
    assert json.loads((tmp_path / "dp" / "privacy.json").read_text())["steps"] == 12
    assert loaded.model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    again = _quick(tmp_path / "dp", epsilon=budget, noise_multiplier=1.0)
    assert again["steps"] == 12 and math.isclose(again["epsilon"], rec["epsilon"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_per_sample_grads_on_the_kit_llm_equal_per_example_backward():
    """Composition (DP fine-tuning of the LLM): per_sample_grads on frontierkit.llm's Transformer (2 layers,
    RoPE, SDPA) equal one backward() per sequence, fp32, atol 1e-6; clipping then bounds each example to C."""
    from frontierkit.llm.model import Transformer, TransformerConfig
    torch.manual_seed(0)
    lm = Transformer(TransformerConfig(vocab_size=64, n_layers=2, n_heads=2, d_model=32, max_seq_len=16))
    x, y = torch.randint(0, 64, (3, 8)), torch.randint(0, 64, (3, 8))

    def lm_loss(logits, targets):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    grads = per_sample_grads(lm, lm_loss, x, y)
    for i in range(3):
        lm.zero_grad()
        lm_loss(lm(x[i:i + 1]), y[i:i + 1]).backward()
        for n, p in lm.named_parameters():
            torch.testing.assert_close(grads[n][i], p.grad, atol=1e-6, rtol=1e-5)
    from frontierkit.privacy.dp import clip_factors
    from frontierkit.train import per_example_norms
    factor = clip_factors(grads, 0.1)                                     # (B,)
    clipped = {n: g * factor.view(-1, *[1] * (g.dim() - 1)) for n, g in grads.items()}
    assert (per_example_norms(clipped) <= 0.1 + 1e-5).all()


def test_a_batchnorm_model_swapped_for_groupnorm_trains_and_reloads_through_the_registry(tmp_path):
    """--dp.swap_batchnorm: the ResNet's BatchNorms become GroupNorms (a recorded transform); the Trainer's
    exported model/ names the transform, and the registry rebuilds it and loads identical outputs."""
    from frontierkit import models
    torch.set_num_threads(1)
    cfg = DPRunConfig()
    cfg = replace(cfg, model=replace(cfg.model, name="resnet", width=8, depth=1),
                  train=replace(cfg.train, steps=3, batch_size=64, log_every=3),
                  dp=DPConfig(epsilon=8.0, swap_batchnorm=True))
    model, _ = train_dp(cfg, tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "model" / "config.json").read_text())
    assert [t["name"] for t in meta["transforms"]] == ["privacy.groupnorm"]
    loaded = models.load(tmp_path / "r")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in loaded.modules())
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
