"""SchNet (Schütt et al. 2017, "SchNet: A continuous-filter convolutional neural network for modeling
quantum interactions", NeurIPS): atom embeddings refined by continuous-filter convolutions

    x_i' = sum_j x_j * W(r_ij),   W(r) = MLP(exp(-gamma (r - mu_k)^2)) * (cos(pi r / r_c) + 1) / 2

(interaction blocks with shifted-softplus, eq. 3-4 and Fig. 2), then an atom-wise MLP and a sum: the
energy E. Forces are ``F = -dE/dpos`` by autograd (eq. 5), so the model is energy-conserving.
Layer layout and initialisation as torch_geometric's ``SchNet`` (weights copy 1:1). The interaction
graph (all pairs within the cutoff, per molecule) is built here with dense distances, not torch_cluster.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require

__all__ = ["SchNet", "SchNetConfig", "build_schnet", "energy_and_forces", "radius_graph"]


@dataclass(frozen=True, kw_only=True)
class SchNetConfig:
    """SchNet's sizes (names as torch_geometric's)."""
    hidden_channels: int = 64
    """atom feature width (paper: 64)"""
    num_filters: int = 64
    """filter width"""
    num_interactions: int = 3
    """interaction blocks (paper: 3 for MD17)"""
    num_gaussians: int = 50
    """radial basis functions on [0, cutoff]"""
    cutoff: float = 5.0
    """interaction radius in Angstrom"""

    def __post_init__(self) -> None:
        for name in ("hidden_channels", "num_filters", "num_interactions", "num_gaussians"):
            require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        require(self.cutoff > 0, "model.cutoff", self.cutoff, "a positive radius")


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    """ssp(x) = ln(0.5 e^x + 0.5) (Schütt et al. 2017, Sec. 3)."""
    return F.softplus(x) - math.log(2.0)


def radius_graph(pos: torch.Tensor, batch: torch.Tensor, cutoff: float) -> torch.Tensor:
    """edge_index (2, E), source j -> target i, of all ordered pairs i != j of one molecule closer than cutoff."""
    same = batch[:, None] == batch[None, :]                                   # (N, N)
    close = torch.cdist(pos.detach(), pos.detach()) < cutoff                  # (N, N)
    adj = same & close & ~torch.eye(len(pos), dtype=torch.bool, device=pos.device)
    target, source = adj.nonzero(as_tuple=True)
    return torch.stack([source, target])                                     # (2, E)


class CFConv(nn.Module):
    """Continuous-filter convolution (Schütt et al. 2017, eq. 3): x_i = lin2(sum_j lin1(x)_j * W(r_ij))."""

    def __init__(self, cfg: SchNetConfig):
        super().__init__()
        h, f = cfg.hidden_channels, cfg.num_filters
        self.filter = nn.Sequential(nn.Linear(cfg.num_gaussians, f), _SSP(), nn.Linear(f, f))   # W's MLP
        self.lin1 = nn.Linear(h, f, bias=False)
        self.lin2 = nn.Linear(f, h)
        self.cutoff = cfg.cutoff

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, r: torch.Tensor, rbf: torch.Tensor) -> torch.Tensor:
        """x (N, h), edge_index (2, E), r (E,), rbf (E, K) -> (N, h)."""
        C = 0.5 * (torch.cos(r * math.pi / self.cutoff) + 1.0)                # (E,) cosine cutoff
        W = self.filter(rbf) * C[:, None]                                     # (E, f)
        source, target = edge_index
        msg = self.lin1(x)[source] * W                                        # (E, f)
        agg = torch.zeros(len(x), msg.shape[1], dtype=msg.dtype, device=msg.device).index_add_(0, target, msg)
        return self.lin2(agg)                                                 # (N, h)


class _SSP(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_softplus(x)


class Interaction(nn.Module):
    """Interaction block (Fig. 2): cfconv -> ssp -> atom-wise linear; added residually to x."""

    def __init__(self, cfg: SchNetConfig):
        super().__init__()
        self.conv = CFConv(cfg)
        self.lin = nn.Linear(cfg.hidden_channels, cfg.hidden_channels)

    def forward(self, x, edge_index, r, rbf):
        return self.lin(shifted_softplus(self.conv(x, edge_index, r, rbf)))


class SchNet(nn.Module):
    """Energy model: (atomic numbers z (N,), positions (N, 3), molecule index batch (N,)) -> energies (B,)."""

    def __init__(self, config: SchNetConfig | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else SchNetConfig(**kwargs)
        self.config = cfg
        self.embedding = nn.Embedding(100, cfg.hidden_channels, padding_idx=0)
        self.register_buffer("mu", torch.linspace(0.0, cfg.cutoff, cfg.num_gaussians), persistent=False)
        self.interactions = nn.ModuleList(Interaction(cfg) for _ in range(cfg.num_interactions))
        self.lin1 = nn.Linear(cfg.hidden_channels, cfg.hidden_channels // 2)
        self.lin2 = nn.Linear(cfg.hidden_channels // 2, 1)
        self.register_buffer("energy_shift", torch.zeros(()))   # mean energy per atom of the training set
        self.register_buffer("energy_scale", torch.ones(()))    # std of energies per atom of the training set

    def rbf(self, r: torch.Tensor) -> torch.Tensor:
        """Gaussian radial basis exp(-gamma (r - mu_k)^2), gamma = 1 / (2 dmu^2) (eq. 4), (E,) -> (E, K)."""
        gamma = 0.5 / float(self.mu[1] - self.mu[0]) ** 2
        return torch.exp(-gamma * (r[:, None] - self.mu[None, :]) ** 2)

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor | None = None,
                edge_index: torch.Tensor | None = None) -> torch.Tensor:
        """z (N,), pos (N, 3), batch (N,) -> E (B,); edge_index (2, E) defaults to the cutoff graph."""
        batch = torch.zeros_like(z) if batch is None else batch
        edge_index = radius_graph(pos, batch, self.config.cutoff) if edge_index is None else edge_index
        source, target = edge_index
        r = (pos[source] - pos[target]).norm(dim=-1)                           # (E,)
        rbf = self.rbf(r)                                                      # (E, K)
        x = self.embedding(z)                                                  # (N, h)
        for block in self.interactions:
            x = x + block(x, edge_index, r, rbf)                               # (N, h)
        e_atom = self.lin2(shifted_softplus(self.lin1(x))).squeeze(-1)         # (N,)
        e_atom = e_atom * self.energy_scale + self.energy_shift
        n_mol = int(batch.max()) + 1 if len(batch) else 0
        return torch.zeros(n_mol, dtype=e_atom.dtype, device=e_atom.device).index_add_(0, batch, e_atom)  # (B,)


def energy_and_forces(model: SchNet, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor | None = None,
                      create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """E (B,) and F = -dE/dpos (N, 3) by autograd (Schütt et al. 2017, eq. 5)."""
    pos = pos if pos.requires_grad else pos.clone().requires_grad_(True)
    E = model(z, pos, batch)
    (grad,) = torch.autograd.grad(E.sum(), pos, create_graph=create_graph)
    return E, -grad


def build_schnet(config: dict[str, Any]) -> SchNet:
    """The registry's builder: an untrained SchNet from its config dict."""
    from ..config import from_dict
    return SchNet(from_dict(SchNetConfig, config, prefix="model."))


def schnet_from_pyg(module: Any) -> SchNet:
    """Our SchNet with the weights of a ``torch_geometric.nn.models.SchNet`` (readout add, no atomref/dipole)."""
    m = module
    cfg = SchNetConfig(hidden_channels=m.hidden_channels, num_filters=m.num_filters,
                       num_interactions=m.num_interactions, num_gaussians=m.num_gaussians, cutoff=m.cutoff)
    ours = SchNet(cfg)
    sd = {"embedding.weight": m.embedding.weight, "lin1.weight": m.lin1.weight, "lin1.bias": m.lin1.bias,
          "lin2.weight": m.lin2.weight, "lin2.bias": m.lin2.bias}
    for i, blk in enumerate(m.interactions):
        p = f"interactions.{i}."
        sd.update({p + "conv.filter.0.weight": blk.mlp[0].weight, p + "conv.filter.0.bias": blk.mlp[0].bias,
                   p + "conv.filter.2.weight": blk.mlp[2].weight, p + "conv.filter.2.bias": blk.mlp[2].bias,
                   p + "conv.lin1.weight": blk.conv.lin1.weight, p + "conv.lin2.weight": blk.conv.lin2.weight,
                   p + "conv.lin2.bias": blk.conv.lin2.bias, p + "lin.weight": blk.lin.weight,
                   p + "lin.bias": blk.lin.bias})
    missing = ours.load_state_dict({k: v.detach() for k, v in sd.items()}, strict=False)
    assert not missing.unexpected_keys and set(missing.missing_keys) <= {"energy_shift", "energy_scale"}, missing
    return ours
