"""Unstructured pruning (exact fractions, tied / frozen / weight-less modules, masks through save/load
and fine-tuning) and structured channel pruning (smaller model, BatchNorm and residual dependencies)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from frontierkit import models
from frontierkit.compress.prune import (cubic_schedule, finetune_classifier, iterative_prune, make_permanent,
                                        prune_global, prune_layerwise, sparsity)
from frontierkit.compress.structured import channel_groups, prune_channels
from frontierkit.errors import ConfigError
from frontierkit.vision.models import build_model


class Mixed(nn.Module):
    """Weight-less modules, a frozen layer and a weight tied between two Linears (the seed's failure cases)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(10, 20)
        self.act, self.pool, self.drop = nn.ReLU(), nn.Identity(), nn.Dropout(0.0)
        self.frozen = nn.Linear(20, 20)
        self.frozen.requires_grad_(False)
        self.out = nn.Linear(20, 10)
        self.tied = nn.Linear(20, 10)
        self.tied.weight = self.out.weight

    def forward(self, x):
        h = self.drop(self.frozen(self.act(self.emb(x))))
        return self.out(h) + self.tied(h)


def _zeros(t):
    return int((t == 0).sum())


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.77])
def test_global_pruning_reaches_exactly_the_requested_fraction_of_existing_weights(amount):
    """Invariant: zeros == round(amount * N) over N = trainable weights, a tied weight counted once; the
    frozen layer untouched; both owners of the tied weight see one mask."""
    torch.manual_seed(0)
    m = Mixed()
    m.out.weight.data[0, :5] = 0.0               # ties at zero must not overshoot the count
    frozen = m.frozen.weight.detach().clone()
    prune_global(m, amount)
    n = m.emb.weight.numel() + m.out.weight.numel()
    assert _zeros(m.emb.weight) + _zeros(m.out.weight) == round(amount * n)
    assert torch.equal(m.frozen.weight, frozen)
    assert torch.equal(m.out.weight, m.tied.weight)
    assert abs(sparsity(m)["total"] - round(amount * n) / n) < 1e-9


def test_global_pruning_removes_the_smallest_magnitudes_and_layer_scope_prunes_each_layer():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    m[1].weight.data *= 100                           # global: the large layer survives
    prune_global(m, 0.5)
    w = torch.cat([m[0].weight.flatten(), m[1].weight.flatten()])
    assert _zeros(m[1].weight) == 0 and w[w != 0].abs().min() >= w.abs().max() * 0 and _zeros(m[0].weight) == 48
    m2 = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    prune_layerwise(m2, 0.25)
    assert [_zeros(m2[0].weight), _zeros(m2[1].weight)] == [16, 8]


def test_pruned_weights_stay_zero_through_finetuning_save_load_and_make_permanent(digits_cnn, digits_data, tmp_path):
    """Masks are parametrizations: fine-tuning with the shared Trainer leaves pruned weights at 0; a masked
    model round-trips through the registry (transform compress.prune_mask); make_permanent keeps outputs."""
    _, cnn = digits_cnn
    (x, y), _ = digits_data
    m = prune_global(copy.deepcopy(cnn), 0.5)
    masks = {n: mod.weight == 0 for n, mod in m.named_modules() if hasattr(mod, "parametrizations")}
    finetune_classifier(m, x, y, steps=20)
    assert all((m.get_submodule(n).weight[z] == 0).all() for n, z in masks.items())
    back = models.load(models.save(m, tmp_path / "masked"))
    xb = x[:8]
    torch.testing.assert_close(back(xb), m(xb), atol=0, rtol=0)
    ref = m(xb)
    make_permanent(m)
    assert not any(hasattr(mod, "parametrizations") for mod in m.modules())
    torch.testing.assert_close(m(xb), ref, atol=0, rtol=0)


def test_cubic_schedule_and_iterative_pruning_end_at_the_target():
    """Zhu & Gupta (2017) eq. 1: increasing sparsities ending exactly at s_f; each round is reached exactly."""
    assert cubic_schedule(0.8, 4) == pytest.approx([0.8 * (1 - (1 - t / 4) ** 3) for t in (1, 2, 3, 4)])
    m = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 5))
    seen = []
    iterative_prune(m, 0.6, 3, finetune=lambda mod: seen.append(sparsity(mod)["total"]))
    assert seen == pytest.approx(cubic_schedule(0.6, 3), abs=1 / 500) and seen[-1] == pytest.approx(0.6, abs=1e-9)


def test_prune_amount_out_of_range_is_one_line_error():
    with pytest.raises(ConfigError, match=r"amount=1.2 is invalid: the fraction of weights to prune, in \[0, 1\)"):
        prune_global(nn.Linear(2, 2), 1.2)


def test_channel_pruning_makes_a_smaller_cnn_equal_to_masking_its_channels():
    """Invariant: removing the lowest-L1 filters (and the next layer's inputs) equals zeroing those channels'
    activations in the original model, to 1e-5; the pruned model has ~1/4 of the conv weights."""
    torch.manual_seed(0)
    cnn = build_model("cnn").eval()
    small = prune_channels(cnn, 0.5)
    x = torch.randn(4, 1, 8, 8)
    masked = copy.deepcopy(cnn)
    for name, keep in [(n, small.get_submodule(n).out_channels) for n in channel_groups(cnn)]:
        conv = masked.get_submodule(name)
        idx = torch.topk(conv.weight.abs().flatten(1).sum(1), keep).indices
        drop = torch.ones(conv.out_channels, dtype=torch.bool)
        drop[idx] = False
        conv.weight.data[drop], conv.bias.data[drop] = 0, 0
    torch.testing.assert_close(small(x), masked(x), atol=1e-5, rtol=1e-5)
    convs = lambda m: sum(p.numel() for n, p in m.named_parameters() if "features" in n)  # noqa: E731
    assert convs(small) < 0.3 * convs(cnn)


def test_channel_pruning_slices_batchnorm_and_leaves_residual_channels(tmp_path):
    """ResNet: a block's inner conv (with its BatchNorm) is pruned; convs feeding a residual add are not.
    The smaller model saves and reloads through the registry (transform compress.channels), same logits."""
    torch.manual_seed(0)
    net = build_model("resnet").eval()
    small = prune_channels(net, 0.5).eval()
    blk = small.stages[0][0]
    assert blk.conv1.out_channels == 16 and blk.bn1.num_features == 16 and blk.conv2.in_channels == 16
    assert blk.conv2.out_channels == 32 and small.stem[0].out_channels == 32
    x = torch.randn(2, 1, 8, 8)
    back = models.load(models.save(small, tmp_path / "r"))
    torch.testing.assert_close(back(x), small(x), atol=0, rtol=0)
