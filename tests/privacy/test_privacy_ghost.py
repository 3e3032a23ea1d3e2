"""Ghost clipping + book-keeping (ghost.py): the clipped gradient sum without per-example gradients equals the
torch.func per-example path (clipped_sum(per_sample_grads(...))), and a private run takes the same steps either way."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.privacy import (DPConfig, DPRunConfig, clipped_sum, ghost_clipped_sum, ghost_supported,
                                 per_sample_grads, train_dp)


class _Mixed(nn.Module):
    """Conv2d with stride/dilation/no bias (instantiated norms), a deep 2x2 Conv2d (ghost Gram norms) and a Linear
    applied to a sequence (T = 4 positions, the Gram branch) and to a vector (T = 1)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, stride=2, padding=1, bias=False)
        self.c2 = nn.Conv2d(32, 32, 3, padding=2, dilation=2)
        self.seq = nn.Linear(32, 48)
        self.head = nn.Linear(48, 10)

    def forward(self, x):
        h = F.max_pool2d(torch.tanh(self.c1(x)), 2)                 # (B, 32, 2, 2)
        h = torch.tanh(self.c2(h))                                  # (B, 32, 2, 2)
        h = torch.tanh(self.seq(h.flatten(2).transpose(1, 2)))      # (B, 4, 48)
        return self.head(h.mean(1))                                 # (B, 10)


def _models():
    from frontierkit.vision import build_model
    torch.manual_seed(0)
    return {"kit_mlp": build_model("mlp", width=16), "kit_cnn": build_model("cnn", width=16), "mixed": _Mixed()}


@pytest.mark.parametrize("name", ["kit_mlp", "kit_cnn", "mixed"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_ghost_clipped_sum_equals_the_per_example_path(name, C):
    """Oracle: clipped_sum(per_sample_grads(...)) (torch.func vmap); fp64, atol 1e-6 (C = 100 clips nothing,
    C = 0.01 clips every example); the Gram (ghost) and instantiated norm branches are both exercised."""
    model = _models()[name].double()
    torch.manual_seed(1)
    x, y = torch.rand(24, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (24,))
    assert ghost_supported(model)
    ref = clipped_sum(per_sample_grads(model, F.cross_entropy, x, y), C)
    ours, loss, _ = ghost_clipped_sum(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]), (x, y), C)
    assert ours.keys() == ref.keys()
    for n in ref:
        torch.testing.assert_close(ours[n], ref[n], atol=1e-6, rtol=0)
    assert abs(loss.item() - F.cross_entropy(model(x), y).item()) < 1e-12


def test_ghost_covers_only_linear_and_conv_models_and_refuses_shared_layers():
    """GroupNorm (or any other trainable layer) -> not supported (the run uses the per-example path); a layer
    called twice has cross terms the ghost norm omits -> ValueError."""
    gn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(144, 10))
    assert not ghost_supported(gn)
    lin = nn.Linear(64, 64)
    twice = nn.Sequential(nn.Flatten(), lin, nn.Tanh(), lin)
    with pytest.raises(ValueError, match="exactly once"):
        ghost_clipped_sum(twice, lambda m, b: F.cross_entropy(m(b[0]), b[1]),
                          (torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))), 1.0)


def test_a_private_run_takes_the_same_step_with_ghost_or_per_example_clipping(tmp_path):
    """train_dp on digits (kit CNN, one AdamW step on a Poisson lot, ε = 8, same seed and noise): the ghost path
    and the torch.func path end at the same weights (fp32, atol 1e-6; measured 1.6e-7) and record which clipping
    they used. (Over more steps AdamW's g/√v amplifies 1e-7 differences in near-zero gradient entries.)"""
    torch.set_num_threads(1)
    cfg = DPRunConfig()
    cfg = replace(cfg, train=replace(cfg.train, steps=1, batch_size=128, log_every=10))
    ghost, rg = train_dp(replace(cfg, dp=DPConfig(epsilon=8.0, ghost=True)), tmp_path / "g")
    plain, rp = train_dp(replace(cfg, dp=DPConfig(epsilon=8.0, ghost=False)), tmp_path / "p")
    assert (rg["clipping"], rp["clipping"]) == ("ghost", "per-example")
    for (n, a), b in zip(ghost.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=n)
