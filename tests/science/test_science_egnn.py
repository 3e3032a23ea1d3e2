"""EGNN (Satorras et al. 2021): exact E(n) equivariance and permutation equivariance (1e-5), the charged
N-body simulator's physics, registry round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from frontierkit.science import EGNN
from frontierkit.science.egnn import GNN, fully_connected_edges


def _graph(seed=0, B=3, M=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B * M, 3, generator=g, dtype=torch.float64)
    v = torch.randn(B * M, 3, generator=g, dtype=torch.float64)
    q = torch.randint(0, 2, (B * M,), generator=g).double() * 2 - 1
    edges = fully_connected_edges(B, M)
    return x, v, q, edges


def _model():
    torch.manual_seed(0)
    model = EGNN(hidden_nf=16, n_layers=3).double()
    with torch.no_grad():  # larger coordinate steps than the 0.001-gain init, so the test has teeth
        for layer in model.layers:
            layer.phi_x[-1].weight.mul_(300)
    return model


def _run(model, x, v, q, edges):
    h = v.norm(dim=-1, keepdim=True)
    return model(h, x, edges, v=v, edge_attr=(q[edges[0]] * q[edges[1]]).unsqueeze(-1))


def _orthogonal(seed, reflect):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    Q = Q * torch.sign(torch.linalg.det(Q))          # a rotation
    return Q @ torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64)) if reflect else Q


@pytest.mark.parametrize("reflect", [False, True])
def test_egnn_is_rotation_reflection_translation_equivariant(reflect):
    """x -> x Q^T + t, v -> v Q^T gives x_out -> x_out Q^T + t and the same h (tolerance 1e-5)."""
    model = _model()
    x, v, q, edges = _graph()
    Q, t = _orthogonal(1, reflect), torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64)
    h0, x0 = _run(model, x, v, q, edges)
    h1, x1 = _run(model, x @ Q.T + t, v @ Q.T, q, edges)
    assert (x0 - x).abs().max() > 1e-2                # the layers do move the particles
    torch.testing.assert_close(x1, x0 @ Q.T + t, atol=1e-5, rtol=0)
    torch.testing.assert_close(h1, h0, atol=1e-5, rtol=0)


def test_egnn_is_permutation_equivariant():
    """Permuting the nodes (and relabelling the edges) permutes the outputs (tolerance 1e-5)."""
    model = _model()
    x, v, q, edges = _graph()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    inv = torch.argsort(perm)
    h0, x0 = _run(model, x, v, q, edges)
    h1, x1 = _run(model, x[perm], v[perm], q[perm], inv[edges])
    torch.testing.assert_close(x1, x0[perm], atol=1e-5, rtol=0)
    torch.testing.assert_close(h1, h0[perm], atol=1e-5, rtol=0)


def test_plain_gnn_is_not_rotation_equivariant():
    """The baseline breaks the symmetry EGNN keeps: a rotated input does not rotate its output."""
    torch.manual_seed(0)
    gnn = GNN(hidden_nf=16, n_layers=2).double()
    x, v, q, edges = _graph()
    Q = _orthogonal(1, False)
    a = (q[edges[0]] * q[edges[1]]).unsqueeze(-1)
    out0 = gnn(torch.cat([x, v], -1), edges, a)
    out1 = gnn(torch.cat([x @ Q.T, v @ Q.T], -1), edges, a)
    assert (out1 - out0 @ Q.T).abs().max() > 1e-3


def test_charged_simulator_conserves_momentum_and_energy():
    """Pairwise forces are antisymmetric (momentum conserved to float precision) and leapfrog keeps the
    total energy to 1% over 1000 steps, on the typical (median) trajectory: the 0.1/dt force clip of
    Kipf et al.'s simulator breaks both in close encounters."""
    from frontierkit.science.data import simulate_charged
    sim = simulate_charged(20, steps=1001, sample_freq=1000, seed=5)
    loc, vel, q = (sim[k].astype(np.float64) for k in ("loc", "vel", "charges"))
    p = vel.sum(axis=2)                                                  # (B, frames, 3)
    drift = np.abs(p[:, 1] - p[:, 0]).max(-1)                            # (B,) clipped close encounters break it
    assert np.median(drift) < 1e-4 and (drift < 1e-4).mean() >= 0.5

    def energy(x, v):
        d = np.linalg.norm(x[:, :, None] - x[:, None], axis=-1) + np.eye(5) * 1e9
        return 0.5 * (v ** 2).sum((-1, -2)) + 0.5 * (q[:, :, None] * q[:, None] / d).sum((-1, -2))
    e0, e1 = energy(loc[:, 0], vel[:, 0]), energy(loc[:, 1], vel[:, 1])
    assert np.median(np.abs(e1 - e0) / np.abs(e0)) < 0.01


def test_egnn_saves_and_loads_through_the_registry(tmp_path):
    """models.save / models.load of kind 'egnn' keeps outputs exactly."""
    from frontierkit import models
    model = _model().float()
    models.save(model, tmp_path / "m")
    back = models.load(tmp_path / "m", kind="egnn")
    x, v, q, edges = (t.float() if t.is_floating_point() else t for t in _graph())
    torch.testing.assert_close(_run(back, x, v, q, edges)[1], _run(model, x, v, q, edges)[1], atol=0, rtol=0)
