"""E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling 2021, "E(n) Equivariant Graph
Neural Networks", ICML) and the plain message-passing GNN it is compared with.

One equivariant graph convolution (EGCL, paper eq. 3-6; velocity form eq. 7):

    m_ij  = phi_e(h_i, h_j, ||x_i - x_j||^2, a_ij)
    v_i'  = phi_v(h_i) v_i + C sum_j (x_i - x_j) phi_x(m_ij),   C = 1 / (M - 1)   (a mean over neighbours)
    x_i'  = x_i + v_i'
    h_i'  = h_i + phi_h(h_i, sum_j m_ij)

Only distances enter the MLPs and coordinates are updated along relative vectors, so rotations,
reflections and translations of x (and rotations/reflections of v) commute with the network, and
so do node permutations. Graphs are given as ``edge_index`` (2, E) over the nodes of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import require

__all__ = ["EGNN", "EGNNConfig", "GNN", "GNNConfig", "build_egnn", "build_gnn", "fully_connected_edges"]


@dataclass(frozen=True, kw_only=True)
class EGNNConfig:
    """EGNN for the N-body task (paper Sec. 5.1: 4 layers, 64 hidden)."""
    in_node_nf: int = 1
    """invariant node features (N-body: the speed |v|)"""
    in_edge_nf: int = 1
    """edge attributes (N-body: the product of charges q_i q_j)"""
    hidden_nf: int = 64
    """hidden width of every MLP"""
    n_layers: int = 4
    """equivariant graph convolutions"""
    use_velocity: bool = True
    """velocity form (eq. 7): x is also moved along phi_v(h) v"""

    def __post_init__(self) -> None:
        for name in ("in_node_nf", "hidden_nf", "n_layers"):
            require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        require(self.in_edge_nf >= 0, "model.in_edge_nf", self.in_edge_nf, "0 or more")


def mlp(*widths: int, last_act: bool = False) -> nn.Sequential:
    """Linear layers with SiLU between them (and after the last when ``last_act``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_act:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def segment_sum(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum rows of ``values`` (E, F) into ``n`` buckets by ``index`` (E,) -> (n, F)."""
    return values.new_zeros(n, values.shape[1]).index_add_(0, index, values)


def segment_mean(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of rows of ``values`` per bucket (empty buckets give 0), (E, F) -> (n, F)."""
    count = segment_sum(torch.ones_like(values[:, :1]), index, n).clamp(min=1)  # (n, 1)
    return segment_sum(values, index, n) / count


class EGCL(nn.Module):
    """One E(n)-equivariant graph convolution (Satorras et al. 2021, eq. 3-7)."""

    def __init__(self, hidden: int, edge_nf: int, use_velocity: bool):
        super().__init__()
        self.phi_e = mlp(2 * hidden + 1 + edge_nf, hidden, hidden, last_act=True)
        self.phi_x = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False))
        nn.init.xavier_uniform_(self.phi_x[-1].weight, gain=0.001)     # small initial coordinate steps
        self.phi_h = mlp(2 * hidden, hidden, hidden)
        self.phi_v = mlp(hidden, hidden, 1) if use_velocity else None

    def forward(self, h: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor, v: torch.Tensor | None,
                edge_attr: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """h (N, F), x (N, D), v (N, D) or None, edge_index (2, E), edge_attr (E, A) -> (h', x')."""
        i, j = edge_index
        x_ij = x[i] - x[j]                                                    # (E, D)
        d2 = (x_ij ** 2).sum(-1, keepdim=True)                                # (E, 1)
        parts = [h[i], h[j], d2] + ([edge_attr] if edge_attr is not None else [])
        m_ij = self.phi_e(torch.cat(parts, dim=-1))                           # (E, F)   eq. 3
        step = segment_mean(x_ij * self.phi_x(m_ij).clamp(-100, 100), i, len(x))  # (N, D) eq. 4, C = 1/(M-1)
        if self.phi_v is not None and v is not None:
            step = step + self.phi_v(h) * v                                   # (N, D)   eq. 7
        m_i = segment_sum(m_ij, i, len(h))                                    # (N, F)   eq. 5
        return h + self.phi_h(torch.cat([h, m_i], dim=-1)), x + step          # eq. 6 (residual h)


class EGNN(nn.Module):
    """A stack of EGCLs (Satorras et al. 2021): (h, x, v) -> (h_L, x_L); equivariant in x and v, invariant in h."""

    def __init__(self, config: EGNNConfig | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else EGNNConfig(**kwargs)
        self.config = cfg
        self.embedding = nn.Linear(cfg.in_node_nf, cfg.hidden_nf)
        self.layers = nn.ModuleList(EGCL(cfg.hidden_nf, cfg.in_edge_nf, cfg.use_velocity)
                                    for _ in range(cfg.n_layers))

    def forward(self, h: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor, v: torch.Tensor | None = None,
                edge_attr: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """h (N, in_node_nf), x (N, D), edge_index (2, E) -> (h (N, hidden), x (N, D))."""
        h = self.embedding(h)                                                 # (N, F)
        for layer in self.layers:
            h, x = layer(h, x, edge_index, v, edge_attr)
        return h, x


@dataclass(frozen=True, kw_only=True)
class GNNConfig:
    """The plain GNN baseline of the paper's N-body table: node input [x, v], output positions."""
    in_node_nf: int = 6
    """node input features (N-body: position and velocity, 3 + 3)"""
    in_edge_nf: int = 1
    """edge attributes (charge products)"""
    hidden_nf: int = 64
    """hidden width"""
    n_layers: int = 4
    """message-passing layers"""
    out_nf: int = 3
    """node outputs (positions)"""


class GCL(nn.Module):
    """A message-passing layer (Gilmer et al. 2017): m_ij = phi_e(h_i, h_j, a_ij), h_i' = h_i + phi_h(h_i, sum m_ij)."""

    def __init__(self, hidden: int, edge_nf: int):
        super().__init__()
        self.phi_e = mlp(2 * hidden + edge_nf, hidden, hidden, last_act=True)
        self.phi_h = mlp(2 * hidden, hidden, hidden)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None) -> torch.Tensor:
        i, j = edge_index
        parts = [h[i], h[j]] + ([edge_attr] if edge_attr is not None else [])
        m_ij = self.phi_e(torch.cat(parts, dim=-1))                           # (E, F)
        return h + self.phi_h(torch.cat([h, segment_sum(m_ij, i, len(h))], dim=-1))  # (N, F)


class GNN(nn.Module):
    """Plain (non-equivariant) GNN: node features -> per-node outputs (the paper's GNN row)."""

    def __init__(self, config: GNNConfig | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else GNNConfig(**kwargs)
        self.config = cfg
        self.embedding = nn.Linear(cfg.in_node_nf, cfg.hidden_nf)
        self.layers = nn.ModuleList(GCL(cfg.hidden_nf, cfg.in_edge_nf) for _ in range(cfg.n_layers))
        self.decoder = mlp(cfg.hidden_nf, cfg.hidden_nf, cfg.out_nf)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        """h (N, in_node_nf) -> (N, out_nf)."""
        h = self.embedding(h)
        for layer in self.layers:
            h = layer(h, edge_index, edge_attr)
        return self.decoder(h)


def fully_connected_edges(n_graphs: int, n_nodes: int) -> torch.Tensor:
    """edge_index (2, B * M * (M-1)) of B fully connected graphs of M nodes (no self loops), nodes numbered graph-major."""
    i, j = torch.meshgrid(torch.arange(n_nodes), torch.arange(n_nodes), indexing="ij")
    keep = i != j
    base = torch.stack([i[keep], j[keep]])                                     # (2, M(M-1))
    offsets = (torch.arange(n_graphs) * n_nodes).repeat_interleave(base.shape[1])
    return base.repeat(1, n_graphs) + offsets                                  # (2, B M (M-1))


def build_egnn(config: dict[str, Any]) -> EGNN:
    """The registry's builder: an untrained EGNN from its config dict."""
    from ..config import from_dict
    return EGNN(from_dict(EGNNConfig, config, prefix="model."))


def build_gnn(config: dict[str, Any]) -> GNN:
    from ..config import from_dict
    return GNN(from_dict(GNNConfig, config, prefix="model."))
