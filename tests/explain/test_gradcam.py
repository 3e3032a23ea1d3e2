"""Grad-CAM, Grad-CAM++, HiResCAM: parity with captum, invariants, hooks, modes, ViT tokens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frontierkit.config import ConfigError
from frontierkit.explain import GradCAM, GradCAMPlusPlus, HiResCAM, tokens_to_grid
from frontierkit.vision import build_model


@pytest.mark.parametrize("name", ["cnn", "resnet"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_gradcam_matches_captum_layergradcam_1e6(name, mode):
    """Oracle: captum LayerGradCam(relu_attributions=True) + LayerAttribution.interpolate; atol 1e-6."""
    from captum.attr import LayerAttribution, LayerGradCam
    model = build_model(name, image_size=16).eval()
    x = torch.rand(6, 1, 16, 16)
    targets = torch.tensor([0, 1, 2, 3, 4, 5])
    ours = GradCAM(model, model.cam_layer).generate(x, targets, upsample=mode, normalize=False)
    ref = LayerGradCam(model, model.cam_layer).attribute(x, target=targets, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (16, 16), interpolate_mode=mode)[:, 0]
    assert ours.abs().max() > 0
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    # layer resolution, and per-sample equality with one-at-a-time generation (batching is exact)
    small = GradCAM(model).generate(x, targets, upsample=None, normalize=False)
    assert small.shape[-1] < 16
    one = torch.stack([GradCAM(model).generate(x[i:i + 1], int(targets[i]), upsample=mode, normalize=False)[0] for i in range(6)])
    torch.testing.assert_close(one, ours, rtol=0, atol=1e-6)


class GapNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: the case where Grad-CAM equals HiResCAM."""

    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


def test_hirescam_equals_gradcam_for_gap_linear_head():
    """Invariant (Draelos & Carin 2020, sec. 3.3): with GAP + linear head the gradient is spatially
    constant, so HiResCAM == Grad-CAM exactly (atol 1e-6)."""
    model = GapNet().eval()
    x = torch.rand(5, 1, 8, 8)
    a = GradCAM(model, model.act).generate(x, 2, normalize=False)
    b = HiResCAM(model, model.act).generate(x, 2, normalize=False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_gradcampp_matches_numpy_eq19():
    """Grad-CAM++ eq. 19 written independently in numpy (pytorch-grad-cam's closed form); atol 1e-6."""
    model = build_model("cnn").eval()
    x = torch.rand(4, 1, 8, 8)
    cam = GradCAMPlusPlus(model)
    a, g, _ = cam.activations_and_gradients(x, 1)
    A, G = a.double().numpy(), g.double().numpy()
    g2, g3 = G ** 2, G ** 3
    aij = g2 / (2 * g2 + A.sum((2, 3))[:, :, None, None] * g3 + 1e-30)
    aij = np.where(G != 0, aij, 0)
    w = (np.maximum(G, 0) * aij).sum((2, 3))
    ref = np.maximum((w[:, :, None, None] * A).sum(1), 0)
    ours = cam.generate(x, 1, upsample=None, normalize=False)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)


def test_hooks_removed_and_mode_untouched_even_on_error():
    model = build_model("resnet")
    layer = model.cam_layer
    for train_mode in (True, False):
        model.train(train_mode)
        GradCAM(model).generate(torch.rand(2, 1, 8, 8), 0)
        assert model.training is train_mode and all(m.training is train_mode for m in model.modules())
        with pytest.raises(ConfigError, match="target_class"):
            GradCAM(model).generate(torch.rand(2, 1, 8, 8), 99)     # bad class: raises after forward
        assert not layer._forward_hooks
    with pytest.raises(ConfigError, match="not called"):
        GradCAM(model, nn.Linear(2, 2)).generate(torch.rand(1, 1, 8, 8), 0)


def test_eval_mode_respected_dropout_and_batchnorm():
    """In eval mode, dropout is off and BatchNorm uses running stats: maps are deterministic and a
    sample's map does not depend on the rest of the batch."""
    model = build_model("resnet", dropout=0.5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    model.eval()
    x = torch.rand(4, 1, 8, 8)
    a = GradCAM(model).generate(x, 3, normalize=False)
    b = GradCAM(model).generate(x[:1], 3, normalize=False)
    torch.testing.assert_close(a[:1], b, rtol=0, atol=1e-6)
    torch.testing.assert_close(GradCAM(model).generate(x, 3, normalize=False), a, rtol=0, atol=0)


def test_vit_tokens_reshaped_automatically_and_by_argument():
    vit = build_model("vit").eval()
    x = torch.rand(3, 1, 8, 8)
    auto = GradCAM(vit).generate(x, 1, normalize=False)
    manual = GradCAM(vit, vit.cam_layer, reshape=lambda t: tokens_to_grid(t, 4, 1)).generate(x, 1, normalize=False)
    torch.testing.assert_close(auto, manual, rtol=0, atol=0)
    assert auto.shape == (3, 8, 8) and auto.abs().sum() > 0
    # the same ViT wrapped so the grid attributes are hidden: reshape= is then required
    wrapped = nn.Sequential(vit)
    with pytest.raises(ConfigError, match="reshape="):
        GradCAM(wrapped, vit.cam_layer).generate(x, 1)
    torch.testing.assert_close(
        GradCAM(wrapped, vit.cam_layer, reshape=lambda t: tokens_to_grid(t, 4, 1)).generate(x, 1, normalize=False),
        auto, rtol=0, atol=0)


def test_normalized_maps_in_unit_interval_and_default_target_is_prediction():
    model = build_model("cnn").eval()
    x = torch.rand(4, 1, 8, 8)
    m = GradCAM(model).generate(x)
    assert m.min() >= 0 and m.max() <= 1
    pred = model(x).argmax(-1)
    torch.testing.assert_close(m, GradCAM(model).generate(x, pred), rtol=0, atol=0)
