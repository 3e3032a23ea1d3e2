"""DeepExplainer (DeepSHAP): parity with shap.DeepExplainer and captum DeepLiftShap where they are
right, exact additivity (1e-4) where shap.DeepExplainer is not."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.explain import AdditivityError, DeepExplainer, UnsupportedOpError
from frontierkit.vision import build_model


def _data(n=4, k=16, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.rand(k, 1, size, size, generator=g)


def additivity_error(model, x, phi, expected):
    with torch.no_grad():
        out = model(x)
    return float((phi.flatten(1, -2).sum(1) - (out - expected)).abs().max())


class PlainCNN(nn.Module):
    """conv-ReLU-conv-ReLU-avgpool-linear: no max-pool (captum and shap both exact here)."""

    def __init__(self):
        super().__init__()
        self.c1, self.r1, self.c2, self.r2 = nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU()
        self.pool, self.fc = nn.AvgPool2d(2), nn.Linear(8 * 3 * 3, 10)

    def forward(self, x):
        return self.fc(self.pool(self.r2(self.c2(self.r1(self.c1(x))))).flatten(1))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_deepshap_matches_shap_deepexplainer(name):
    """Oracle: shap.DeepExplainer (0.51) on our MLP and max-pool CNN (non-overlapping pools, module
    ReLUs: the cases shap handles right); atol 1e-5."""
    import shap
    torch.manual_seed(0)
    model = build_model(name).eval()
    x, bg = _data()
    ours = DeepExplainer(model, bg).shap_values(x)                       # (n, 1, 8, 8, 10)
    ref = np.asarray(shap.DeepExplainer(model, bg).shap_values(x, check_additivity=False))
    assert ref.shape == tuple(ours.shape)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("model_fn", [lambda: build_model("mlp"), PlainCNN])
def test_deepshap_matches_captum_deepliftshap(model_fn):
    """Oracle: captum DeepLiftShap (rescale rule, background as baselines), per class; atol 1e-5."""
    from captum.attr import DeepLiftShap
    torch.manual_seed(1)
    model = model_fn().eval()
    x, bg = _data(n=3, k=12)
    ours = DeepExplainer(model, bg).shap_values(x)
    for c in (0, 4, 9):
        ref = DeepLiftShap(model).attribute(x, baselines=bg, target=c)
        torch.testing.assert_close(ours[..., c], ref, rtol=0, atol=1e-5)


class ReusedReLU(nn.Module):
    """shap #3725: one nn.ReLU module called twice in forward."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3, self.act = nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 10), nn.ReLU()

    def forward(self, x):
        return self.l3(self.act(self.l2(self.act(self.l1(x.flatten(1))))))


class MnistCNN(nn.Module):
    """shap #3938's minimal MNIST model: functional max-pool/ReLU, 28x28 input, log-softmax output."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 10, 5), nn.Conv2d(10, 20, 5)
        self.fc1, self.fc2 = nn.Linear(320, 50), nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.view(-1, 320)))
        return F.log_softmax(self.fc2(x), dim=1)


class OverlapPoolSoftmax(nn.Module):
    """shap #2511-style: overlapping max-pool windows (kernel 3, stride 2, padding), GELU, SiLU, softmax output."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.Linear(8 * 3 * 3, 10)

    def forward(self, x):
        h = F.max_pool2d(F.gelu(self.conv(x)), 3, stride=2, padding=1)   # (B, 8, 4, 4)
        h = F.silu(F.avg_pool2d(h, 2, stride=1))                        # (B, 8, 3, 3)
        return F.softmax(self.fc(h.flatten(1)), dim=-1)


def _resnet_with_stats():
    m = build_model("resnet")
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m


@pytest.mark.parametrize("case,model_fn,size", [("reused-relu #3725", ReusedReLU, 8),
                                               ("mnist-cnn #3938", MnistCNN, 28),
                                               ("overlapping max-pool + softmax #2511", OverlapPoolSoftmax, 8),
                                               ("resnet: BN + residual + reused ReLU", _resnet_with_stats, 8)])
def test_deepshap_additivity_where_shap_fails(case, model_fn, size):
    """Invariant: sum(phi) = f(x) - E f(background) to 1e-4 for every class. shap.DeepExplainer
    breaks it by > 1e-3 on the same model/inputs (asserted, so the case stays a real one)."""
    import shap
    torch.manual_seed(2)
    model = model_fn().eval()
    x, bg = _data(n=3, k=8, size=size)
    exp = DeepExplainer(model, bg)
    phi = exp.shap_values(x)
    assert additivity_error(model, x, phi, exp.expected_value) < 1e-4
    ref = np.asarray(shap.DeepExplainer(model, bg).shap_values(x, check_additivity=False))
    assert additivity_error(model, x, torch.as_tensor(ref, dtype=torch.float32), exp.expected_value) > 1e-3


def test_log_softmax_output_matches_logit_attributions_shifted():
    """For log-softmax outputs the rule is exact too; with a single output the rescale chain is
    verified against the finite difference f(x) - f(b) per background row (1e-5)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Tanh(), nn.Linear(5, 3), nn.LogSoftmax(-1)).eval()
    x, bg = _data(n=2, k=1)
    phi = DeepExplainer(model, bg).shap_values(x)                       # one reference: plain DeepLIFT
    with torch.no_grad():
        delta = model(x) - model(bg)
    torch.testing.assert_close(phi.flatten(1, -2).sum(1), delta, rtol=0, atol=1e-5)


def test_target_selects_one_output_and_mode_is_restored():
    model = build_model("resnet")
    model.train()
    x, bg = _data(n=3, k=6)
    exp = DeepExplainer(model, bg)
    full = exp.shap_values(x)
    t = torch.tensor([2, 0, 7])
    picked = exp.shap_values(x, t)
    torch.testing.assert_close(picked, torch.stack([full[i, ..., int(t[i])] for i in range(3)]), rtol=0, atol=1e-6)
    assert model.training and all(m.training for m in model.modules())


def test_chunking_does_not_change_values():
    model = build_model("cnn").eval()
    x, bg = _data(n=5, k=10)
    a = DeepExplainer(model, bg).shap_values(x)
    b = DeepExplainer(model, bg, max_rows=25).shap_values(x)            # 1 input per chunk
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_unsupported_ops_raise_with_the_alternative():
    vit = build_model("vit").eval()
    x, bg = _data(n=2, k=4)
    with pytest.raises(UnsupportedOpError, match="GradientExplainer"):
        DeepExplainer(vit, bg).shap_values(x)

    class Gate(nn.Module):
        def forward(self, x):
            h = x.flatten(1)
            return (h * torch.sigmoid(h)).sum(1, keepdim=True) + h[:, :2] * h[:, 2:4]

    with pytest.raises(UnsupportedOpError, match="two activations"):
        DeepExplainer(Gate(), bg).shap_values(x)


def test_additivity_check_raises_for_an_inexact_model():
    class HiddenProduct(nn.Module):          # a product written through torch.square: no rule, no error
        def forward(self, x):
            return torch.square(x.flatten(1)).sum(1, keepdim=True)

    x, bg = _data(n=2, k=4)
    with pytest.raises(AdditivityError, match="do not add up"):
        DeepExplainer(HiddenProduct(), bg).shap_values(x)


class OddPoolCNN(nn.Module):
    """Module max-pool on a 7x7 map (a remainder row/column outside every window)."""

    def __init__(self):
        super().__init__()
        self.conv, self.act, self.pool, self.fc = nn.Conv2d(1, 4, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Linear(36, 10)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def test_deepshap_tiling_maxpool_with_remainder_matches_shap():
    """Oracle: shap.DeepExplainer on a 7x7 -> 3x3 max-pool (our reshape fast path + zero-padded
    remainder); atol 1e-5, and additivity 1e-4."""
    import shap
    torch.manual_seed(3)
    model = OddPoolCNN().eval()
    x, bg = _data(n=3, k=8)
    exp = DeepExplainer(model, bg)
    ours = exp.shap_values(x)
    ref = np.asarray(shap.DeepExplainer(model, bg).shap_values(x, check_additivity=False))
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    assert additivity_error(model, x, ours, exp.expected_value) < 1e-4
