"""Integrated Gradients (captum parity), token attributions, faithfulness metrics, plots and CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from frontierkit.explain import (auc, deletion_insertion_curves, faithfulness_table, integrated_gradients,
                                 standard_methods, token_attributions)
from frontierkit.vision import build_model


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle", "riemann_left", "riemann_right"])
@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_ig_matches_captum_with_convergence_delta(name, method):
    """Oracle: captum IntegratedGradients (same steps, method, zero and random baselines); atol 1e-5
    for attributions and for the convergence delta."""
    from captum.attr import IntegratedGradients
    torch.manual_seed(0)
    model = build_model(name).eval()
    x, base = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    t = torch.tensor([1, 3, 5, 7])
    for b in (None, base):
        ours = integrated_gradients(model, x, t, b, steps=24, method=method)
        ref, delta = IntegratedGradients(model).attribute(x, baselines=b, target=t, n_steps=24, method=method,
                                                          return_convergence_delta=True)
        torch.testing.assert_close(ours.attributions, ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.delta, delta.float(), rtol=0, atol=1e-5)


def test_ig_trapezoid_is_captums_rescaled_by_n_over_n_minus_1():
    """captum's riemann_trapezoid weights sum to (n-1)/n (its step sizes are 1/n with halved ends on an
    n-point grid); ours sum to 1. Oracle relation: ours == captum * n / (n-1), atol 1e-5."""
    from captum.attr import IntegratedGradients
    model = build_model("cnn").eval()
    x = torch.rand(2, 1, 8, 8)
    ours = integrated_gradients(model, x, 4, steps=10, method="riemann_trapezoid").attributions
    ref = IntegratedGradients(model).attribute(x, target=4, n_steps=10, method="riemann_trapezoid")
    torch.testing.assert_close(ours, ref * 10 / 9, rtol=0, atol=1e-5)


def test_ig_completeness_delta_shrinks_with_steps():
    """Completeness (Sundararajan et al. 2017, prop. 1): |delta| -> 0 as the quadrature refines."""
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    x = torch.rand(3, 1, 8, 8)
    d = [integrated_gradients(model, x, 0, steps=s, method="riemann_right").delta.abs().max() for s in (4, 64)]
    assert d[1] < d[0] / 4 and d[1] < 5e-3


class TinyLM(nn.Module):
    """An LLM-shaped toy: embedding -> causal mixing -> logits (B, T, V)."""

    def __init__(self, vocab=40, dim=16):
        super().__init__()
        self.embed, self.mix, self.head = nn.Embedding(vocab, dim), nn.Linear(dim, dim), nn.Linear(dim, vocab)

    def forward(self, ids):
        h = torch.tanh(self.mix(self.embed(ids))).cumsum(1)           # causal: position t sees <= t
        return self.head(h)


def test_token_attributions_match_captum_layer_ig():
    """Oracle: captum LayerIntegratedGradients on the embedding, target = next-token argmax, baseline
    = embedding of token 0 (captum's default); atol 1e-5. Completeness delta below 1e-4."""
    from captum.attr import LayerIntegratedGradients
    torch.manual_seed(0)
    lm = TinyLM().eval()
    ids = torch.randint(1, 40, (2, 6))
    res, tok = token_attributions(lm, lm.embed, ids, baseline=lm.embed(torch.zeros_like(ids)).detach(), steps=40)
    ref = LayerIntegratedGradients(lambda i: lm(i)[:, -1], lm.embed).attribute(ids, target=tok, n_steps=40)
    torch.testing.assert_close(res.attributions, ref.sum(-1), rtol=0, atol=1e-5)
    zero, _ = token_attributions(lm, lm.embed, ids, steps=40)        # zero-embedding baseline
    assert zero.attributions.shape == (2, 6) and zero.delta.abs().max() < 1e-4


def test_deletion_insertion_curve_endpoints_and_auc():
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    x, t = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    d, i = deletion_insertion_curves(model, x, t, torch.rand(3, 8, 8))
    with torch.no_grad():
        p_x = model(x).softmax(-1)[torch.arange(3), t]
        p_0 = model(torch.zeros_like(x)).softmax(-1)[torch.arange(3), t]
    torch.testing.assert_close(d[:, 0], p_x)
    torch.testing.assert_close(d[:, -1], p_0)
    torch.testing.assert_close(i[:, 0], p_0)
    torch.testing.assert_close(i[:, -1], p_x)
    torch.testing.assert_close(auc(torch.tensor([[0.0, 1.0, 1.0]])), torch.tensor([0.75]))


@pytest.mark.learned
def test_faithfulness_attributions_beat_random_on_trained_cnn(trained_cnn, digits):
    """On a trained digits CNN, IG and DeepSHAP delete better (lower AUC) and insert better
    (higher AUC) than random maps."""
    _, model = trained_cnn
    (x_tr, _), (x_te, y_te) = digits
    rows = {r["method"]: r for r in faithfulness_table(model, x_te[:24], y_te[:24],
                                                       standard_methods(model, x_tr[:30]))}
    for name in ("integrated-gradients", "deep-shap"):
        assert rows[name]["deletion_auc"] < rows["random"]["deletion_auc"] - 0.1
        assert rows[name]["insertion_auc"] > rows["random"]["insertion_auc"] + 0.1


def test_plots_write_pngs_with_expected_grid(tmp_path):
    from PIL import Image

    from frontierkit.explain.plots import overlay_figure, save_png, shap_image_figure, summary_figure
    x = torch.rand(3, 1, 8, 8)
    p1 = save_png(overlay_figure(x, torch.rand(3, 8, 8)), tmp_path / "o.png")
    p2 = save_png(shap_image_figure(torch.randn(3, 1, 8, 8, 10), x), tmp_path / "s.png")
    p3 = save_png(summary_figure(np.random.randn(50, 5), np.random.rand(50, 5), list("abcde")), tmp_path / "b.png")
    w1, h1 = Image.open(p1).size
    w2, h2 = Image.open(p2).size
    assert w1 > h1 and h2 > w2 / 11 * 2 and w2 > 3 * h2 / 2          # 2x3 grid; 3 rows x 11 columns
    assert Image.open(p3).size[1] > 100


@pytest.mark.parametrize("cmd,file,extra", [("gradcam", "gradcam.npy", []), ("gradcam", "hirescam.npy",
                                            ["--method", "hirescam"]), ("shap", "shap.npy", ["--background", "20"]),
                                           ("ig", "ig.npy", ["--steps", "16"])])
def test_explain_cli_writes_pngs_and_values(trained_cnn, digits, tmp_path, cmd, file, extra, capsys):
    from frontierkit.cli import main
    from frontierkit.explain import DeepExplainer, GradCAM
    model_dir, model = trained_cnn
    out = tmp_path / cmd
    assert main(["explain", cmd, "--model", str(model_dir), "--input", "test:0-3", "--out", str(out),
                 "--target", "label", *extra]) == 0
    info = json.loads((out / "explain.json").read_text())
    values = np.load(out / file)
    assert list(out.glob("*.png")) and info["n"] == 4
    (x_tr, _), (x_te, y_te) = digits
    assert info["labels"] == y_te[:4].tolist() == info["targets"]
    if file == "gradcam.npy":
        np.testing.assert_allclose(values, GradCAM(model).generate(x_te[:4], y_te[:4]).numpy(), atol=1e-6)
    if cmd == "shap":
        ref = DeepExplainer(model, x_tr[:20]).shap_values(x_te[:4])
        np.testing.assert_allclose(values, ref.numpy(), atol=1e-6)
    if cmd == "ig":
        ref = integrated_gradients(model, x_te[:4], y_te[:4], steps=16)
        np.testing.assert_allclose(values, ref.attributions.numpy(), atol=1e-6)
        np.testing.assert_allclose(info["convergence_delta"], ref.delta.numpy(), atol=1e-6)
    assert main(["explain", cmd, "--model", str(model_dir), "--input", "test:9-2", "--out", str(out)]) == 2
