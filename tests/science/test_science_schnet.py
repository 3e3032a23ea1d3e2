"""SchNet (Schütt et al. 2017): parity with torch_geometric's SchNet (weights copied, energies and autograd
forces, 1e-5), the symmetries an interatomic potential must have, registry round trip."""
from __future__ import annotations

import pytest
import torch

from frontierkit.science import SchNet
from frontierkit.science.schnet import energy_and_forces, radius_graph, schnet_from_pyg


def _molecules():
    g = torch.Generator().manual_seed(0)
    z = torch.tensor([6, 1, 1, 1, 1, 8, 1, 1, 6, 7, 8, 1])                # methane, water, a CNO+H fragment
    batch = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    pos = torch.randn(12, 3, generator=g) * 1.2
    return z, pos, batch


def test_schnet_matches_torch_geometric():
    """Oracle: torch_geometric.nn.models.SchNet (readout add) with our interaction graph passed as its
    ``interaction_graph`` callable (torch_cluster's radius_graph is not installable), weights copied by
    schnet_from_pyg; energies and forces (-dE/dpos through both models' autograd) agree to 1e-5."""
    from torch_geometric.nn.models import SchNet as PyGSchNet
    z, pos, batch = _molecules()
    cutoff = 3.0

    def graph(p, b):
        ei = radius_graph(p, b, cutoff)
        return ei, (p[ei[0]] - p[ei[1]]).norm(dim=-1)

    torch.manual_seed(0)
    theirs = PyGSchNet(hidden_channels=32, num_filters=24, num_interactions=3, num_gaussians=20, cutoff=cutoff,
                       interaction_graph=graph)
    ours = schnet_from_pyg(theirs)
    p1 = pos.clone().requires_grad_(True)
    e_theirs = theirs(z, p1, batch).squeeze(-1)
    f_theirs = -torch.autograd.grad(e_theirs.sum(), p1)[0]
    e_ours, f_ours = energy_and_forces(ours, z, pos, batch)
    torch.testing.assert_close(e_ours, e_theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f_ours, f_theirs, atol=1e-5, rtol=1e-5)


def test_schnet_energy_is_invariant_and_forces_equivariant():
    """Rotating + translating a molecule keeps E and rotates F (tolerance 1e-5); permuting atoms permutes F."""
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, cutoff=4.0).double()
    z, pos, batch = _molecules()
    pos = pos.double()
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    e0, f0 = energy_and_forces(model, z, pos, batch)
    e1, f1 = energy_and_forces(model, z, pos @ Q.T + 2.5, batch)
    torch.testing.assert_close(e1, e0, atol=1e-5, rtol=0)
    torch.testing.assert_close(f1, f0 @ Q.T, atol=1e-5, rtol=0)
    perm = torch.tensor([4, 3, 2, 1, 0, 7, 6, 5, 11, 10, 9, 8])
    e2, f2 = energy_and_forces(model, z[perm], pos[perm], batch[perm])
    torch.testing.assert_close(e2, e0, atol=1e-10, rtol=0)
    torch.testing.assert_close(f2, f0[perm], atol=1e-10, rtol=0)


def test_radius_graph_keeps_pairs_within_cutoff_of_one_molecule():
    z, pos, batch = _molecules()
    ei = radius_graph(pos, batch, 2.0)
    d = (pos[ei[0]] - pos[ei[1]]).norm(dim=-1)
    assert (d < 2.0).all() and (batch[ei[0]] == batch[ei[1]]).all() and (ei[0] != ei[1]).all()
    n_expected = sum(int(((torch.cdist(pos[batch == b], pos[batch == b]) < 2.0).sum() - (batch == b).sum()))
                     for b in range(3))
    assert ei.shape[1] == n_expected


def test_schnet_saves_and_loads_through_the_registry(tmp_path):
    from frontierkit import models
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2)
    model.energy_shift.fill_(-3.0)
    models.save(model, tmp_path / "m")
    back = models.load(tmp_path / "m", kind="schnet")
    z, pos, batch = _molecules()
    torch.testing.assert_close(back(z, pos, batch), model(z, pos, batch), atol=0, rtol=0)
