"""KernelExplainer, exact Shapley values and GradientExplainer (expected gradients)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frontierkit.explain import GradientExplainer, KernelExplainer, exact_shapley, integrated_gradients


def _nonlinear(X):
    X = np.asarray(X)
    return np.stack([np.tanh(X[:, 0] * X[:, 1]) + X[:, 2] ** 2 - X[:, 3:].sum(1) * X[:, 0],
                     np.maximum(X[:, 1:4].sum(1), 0.2)], 1)              # (N, 2) outputs


@pytest.mark.parametrize("M", [3, 6, 10])
def test_kernel_shap_full_enumeration_equals_exact_shapley(M):
    """Invariant (Lundberg & Lee 2017, thm 2): with every coalition evaluated, Kernel SHAP's weighted
    regression gives the exact Shapley values (enumerated over all 2^M coalitions); atol 1e-9."""
    rng = np.random.default_rng(M)
    bg, X = rng.normal(size=(7, M)), rng.normal(size=(3, M))
    kern = KernelExplainer(_nonlinear, bg).shap_values(X)                  # (3, M, 2)
    exact = np.stack([exact_shapley(_nonlinear, x, bg) for x in X])
    np.testing.assert_allclose(kern, exact, atol=1e-9)


def test_exact_shapley_axioms():
    """Efficiency, symmetry, dummy and linearity of exact_shapley on hand-built games."""
    bg = np.zeros((1, 4))
    x = np.array([1.0, 2.0, 3.0, 4.0])
    f = lambda X: X[:, 0] * X[:, 1] + 5 * X[:, 2]                           # noqa: E731  x3 is a dummy
    phi = exact_shapley(f, x, bg)[:, 0]
    np.testing.assert_allclose(phi, [1.0, 1.0, 15.0, 0.0], atol=1e-12)    # product split evenly
    np.testing.assert_allclose(phi.sum(), f(x[None])[0] - f(bg)[0], atol=1e-12)
    g = lambda X: 2 * f(X) + X[:, 3]                                        # noqa: E731
    np.testing.assert_allclose(exact_shapley(g, x, bg)[:, 0], 2 * phi + [0, 0, 0, 4], atol=1e-12)


def _diabetes_model():
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    X, y = X.astype(np.float32) * 10, ((y - y.mean()) / y.std()).astype(np.float32)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.mse_loss(net(xt)[:, 0], yt).backward()
        opt.step()
    f = lambda A: net(torch.as_tensor(A, dtype=torch.float32)).detach().double().numpy()[:, 0]  # noqa: E731
    return f, X


def test_kernel_explainer_matches_shap_kernelexplainer_on_diabetes():
    """Oracle: shap.KernelExplainer on sklearn's diabetes data (10 features, a small trained MLP,
    20 background rows), nsamples='auto' (both evaluate all 1022 coalitions); atol 1e-6."""
    import shap
    f, X = _diabetes_model()
    bg, xs = X[:20], X[100:105]
    ours = KernelExplainer(f, bg).shap_values(xs)                          # (5, 10)
    ref = np.asarray(shap.KernelExplainer(f, bg).shap_values(xs, silent=True))
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    exp = KernelExplainer(f, bg)
    np.testing.assert_allclose(ours.sum(1), f(xs) - exp.expected_value[0], atol=1e-6)  # fp32 model


def test_kernel_sampling_keeps_efficiency_and_approaches_exact():
    """With sampled coalitions (M=12 > enumeration budget) efficiency still holds exactly and the
    estimate is close to the exact Shapley values."""
    rng = np.random.default_rng(0)
    M = 12
    bg, x = rng.normal(size=(5, M)), rng.normal(size=(1, M))
    kern = KernelExplainer(_nonlinear, bg)
    est = kern.shap_values(x, nsamples=3000, seed=1)[0]                    # (M, 2)
    np.testing.assert_allclose(est.sum(0), _nonlinear(x)[0] - kern.expected_value, atol=1e-9)
    exact = exact_shapley(_nonlinear, x[0], bg)
    assert np.abs(est - exact).max() < 0.05 * np.abs(exact).max()


def test_gradient_explainer_exact_for_linear_model_and_matches_shap():
    """Expected gradients of a linear model with one reference row is w * (x - b) for any path
    points; equal to shap.GradientExplainer's value (oracle, atol 1e-5)."""
    import shap
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x, b = torch.rand(4, 1, 8, 8), torch.rand(1, 1, 8, 8)
    phi = GradientExplainer(model, b).shap_values(x, nsamples=20)           # (4, 1, 8, 8, 3)
    w = model[1].weight.detach().view(3, 1, 8, 8)
    exact = ((x - b)[..., None] * w.permute(1, 2, 3, 0)[None])
    torch.testing.assert_close(phi, exact, rtol=0, atol=1e-5)
    ref = np.asarray(shap.GradientExplainer(model, b).shap_values(x, nsamples=20))
    np.testing.assert_allclose(phi.numpy(), ref, atol=1e-5)


def test_expected_gradients_converge_to_integrated_gradients():
    """With a single reference, expected gradients is IG with random path points: their mean over
    many draws converges to IG (Gauss-Legendre, 64 points); atol 2% of the largest attribution."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4)).eval()
    x, b = torch.rand(3, 1, 8, 8), torch.rand(1, 1, 8, 8)
    eg = GradientExplainer(model, b).shap_values(x, target=2, nsamples=4000)
    ig = integrated_gradients(model, x, 2, baseline=b, steps=64).attributions
    assert (eg - ig).abs().max() < 0.02 * ig.abs().max()
