"""Federated learning, simulated in one process: clients train locally, the server aggregates.

- FedAvg (McMahan, Moore, Ramage, Hampson, Agüera y Arcas 2017, "Communication-Efficient Learning of
  Deep Networks from Decentralized Data", Algorithm 1): a fraction C of the K clients per round, E
  local epochs of SGD each, the server's new weights w_{t+1} = Σ_k (n_k / n) w^k_{t+1}.
- FedProx (Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith 2020, "Federated Optimization in Heterogeneous
  Networks", eq. 2): each client minimises F_k(w) + (μ/2) ‖w - w_t‖², which keeps non-IID clients
  near the global model.
- Non-IID partitions: Dirichlet(α) label proportions per client (Hsu, Qi, Brown 2019) and k labels per
  client (McMahan 2017's pathological split).
- Systems heterogeneity (Li et al. 2020, Sec. 5.1): a fraction of each round's clients are stragglers that
  finish only a random 1..E-1 of their E local epochs; FedAvg drops their updates, FedProx aggregates the
  partial work (its "γ-inexact" solutions).
Secure aggregation (secagg.py) and CKKS aggregation (he.py) replace the plain weighted sum.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import require


# -- partitions ---------------------------------------------------------------------------------------
def iid_split(labels: torch.Tensor, n_clients: int, seed: int = 0) -> list[torch.Tensor]:
    """A random equal-size partition of the example indices."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    return [idx.sort().values for idx in perm.tensor_split(n_clients)]


def dirichlet_split(labels: torch.Tensor, n_clients: int, alpha: float, seed: int = 0,
                    min_size: int = 2) -> list[torch.Tensor]:
    """Per class c, proportions p_c ~ Dir(α·1_K) over the K clients (Hsu et al. 2019); small α = skewed."""
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    for _ in range(100):                                  # redraw until every client has min_size examples
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            p = rng.dirichlet(alpha * np.ones(n_clients))  # (K,)
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k] += chunk.tolist()
        if min(len(p) for p in parts) >= min_size:
            return [torch.tensor(sorted(p)) for p in parts]
    raise ValueError(f"Dirichlet(alpha={alpha}) left a client with < {min_size} examples; raise alpha")


def label_split(labels: torch.Tensor, n_clients: int, labels_per_client: int, seed: int = 0) -> list[torch.Tensor]:
    """Each client holds examples of ``labels_per_client`` classes only (McMahan 2017's pathological non-IID)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels.numpy())
    owners = [[(k * labels_per_client + j) % len(classes) for j in range(labels_per_client)] for k in range(n_clients)]
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for c in classes:
        holders = [k for k in range(n_clients) if c in owners[k]]
        idx = rng.permutation(np.flatnonzero(labels.numpy() == c))
        for k, chunk in zip(holders, np.array_split(idx, len(holders))):
            parts[k] += chunk.tolist()
    return [torch.tensor(sorted(p)) for p in parts]


# -- client and server ----------------------------------------------------------------------------------
def proximal_term(model: nn.Module, global_params: dict[str, torch.Tensor], mu: float) -> torch.Tensor:
    """(μ/2) ‖w - w_t‖² over all parameters (Li et al. 2020, eq. 2)."""
    return mu / 2 * sum((p - global_params[n]).pow(2).sum() for n, p in model.named_parameters())


def local_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                 mu: float = 0.0, seed: int = 0, momentum: float = 0.0) -> dict[str, torch.Tensor]:
    """ClientUpdate (McMahan 2017, Alg. 1): E epochs of minibatch SGD from the global weights; μ > 0 is FedProx."""
    global_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)   # fresh momentum buffer each round
    params = list(model.parameters())
    anchors = [global_params[n] for n, _ in model.named_parameters()]
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])                      # ()
            opt.zero_grad()
            loss.backward()
            if mu > 0:                                  # ∇ of proximal_term: μ (w - w_t), added in place
                have = [i for i, p in enumerate(params) if p.grad is not None]
                with torch.no_grad():
                    torch._foreach_add_([params[i].grad for i in have],
                                        torch._foreach_sub([params[i] for i in have], [anchors[i] for i in have]),
                                        alpha=mu)
            opt.step()
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


def weighted_average(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """w_{t+1} = Σ_k (n_k / n) w^k (McMahan 2017, Alg. 1 server step)."""
    total = sum(weights)
    return {n: sum(w / total * s[n].float() for s, w in zip(states, weights)).to(states[0][n].dtype)
            for n in states[0]}


Aggregator = Callable[[list[dict[str, torch.Tensor]], list[float], int], dict[str, torch.Tensor]]
"""``(client states, client sizes, round) -> new global state``: plain, secure-masked or CKKS-encrypted"""


@dataclass(frozen=True, kw_only=True)
class FLConfig:
    algorithm: Literal["fedavg", "fedprox"] = "fedavg"
    """fedavg (McMahan 2017) or fedprox (Li 2020: local proximal term mu)"""
    mu: float = 0.1
    """fedprox only: proximal strength μ"""
    clients: int = 10
    """number of clients K"""
    fraction: float = 1.0
    """client fraction C sampled each round"""
    rounds: int = 20
    """communication rounds"""
    local_epochs: int = 1
    """local epochs E per round"""
    batch_size: int = 16
    """local minibatch size B"""
    lr: float = 0.1
    """local SGD learning rate"""
    momentum: float = 0.0
    """local SGD momentum (NIID-Bench, Li et al. 2021, uses 0.9); the buffer starts at zero every round"""
    stragglers: float = 0.0
    """fraction of each round's clients that finish only a random 1..E-1 local epochs (Li et al. 2020, Sec. 5.1):
    fedavg drops their updates, fedprox aggregates their partial work"""
    partition: Literal["iid", "dirichlet", "labels"] = "dirichlet"
    """client data: iid, dirichlet (alpha) or labels (labels_per_client)"""
    alpha: float = 0.5
    """Dirichlet concentration (small = more skewed)"""
    labels_per_client: int = 1
    """labels partition: classes per client"""
    seed: int = 0
    """partition, sampling and init seed"""

    def __post_init__(self) -> None:
        require(self.clients >= 2, "fl.clients", self.clients, "must be >= 2")
        require(0 < self.fraction <= 1, "fl.fraction", self.fraction, "must be in (0, 1]")
        require(self.rounds >= 1, "fl.rounds", self.rounds, "must be >= 1")
        require(self.mu >= 0, "fl.mu", self.mu, "must be >= 0")
        require(self.alpha > 0, "fl.alpha", self.alpha, "must be > 0")
        require(0 <= self.momentum < 1, "fl.momentum", self.momentum, "must be in [0, 1)")
        require(0 <= self.stragglers < 1, "fl.stragglers", self.stragglers, "must be in [0, 1)")
        require(self.stragglers == 0 or self.local_epochs >= 2, "fl.local_epochs", self.local_epochs,
                "must be >= 2 with fl.stragglers > 0 (a straggler finishes 1..E-1 epochs)")


@dataclass(frozen=True, kw_only=True)
class FLRunConfig:
    fl: FLConfig = field(default_factory=FLConfig)
    """federated algorithm, clients, partition"""
    aggregation: Literal["plain", "masked", "ckks"] = "plain"
    """server aggregation: plain sum, pairwise-masked secure sum (Bonawitz 2017) or CKKS-encrypted sum"""
    model: Literal["mlp", "cnn"] = "mlp"
    """client model (frontierkit.vision)"""
    width: int = 16
    """model width"""
    transport: Literal["simulate", "flower"] = "simulate"
    """simulate: every client in this process; flower: one process per client, talking gRPC through Flower
    (needs the flwr environment: make flower-venv)"""

    def __post_init__(self) -> None:
        require(not (self.transport == "flower" and self.aggregation == "ckks"), "aggregation", self.aggregation,
                "plain or masked with transport = 'flower' (CKKS aggregation runs in the simulator)")
        require(not (self.transport == "flower" and self.fl.stragglers > 0), "fl.stragglers", self.fl.stragglers,
                "must be 0 with transport = 'flower' (simulated stragglers run in the simulator)")


def partition(labels: torch.Tensor, cfg: FLConfig) -> list[torch.Tensor]:
    if cfg.partition == "iid":
        return iid_split(labels, cfg.clients, cfg.seed)
    if cfg.partition == "dirichlet":
        return dirichlet_split(labels, cfg.clients, cfg.alpha, cfg.seed)
    return label_split(labels, cfg.clients, cfg.labels_per_client, cfg.seed)


def choose_clients(rng: np.random.Generator, cfg: FLConfig) -> list[int]:
    """This round's max(1, C·K) clients, sorted (McMahan 2017, Alg. 1 "S_t = random set of m clients")."""
    m = max(1, round(cfg.fraction * cfg.clients))
    return sorted(rng.choice(cfg.clients, size=m, replace=False).tolist())


def straggler_epochs(rng: np.random.Generator, cfg: FLConfig, chosen: list[int]) -> dict[int, int]:
    """Client -> epochs it finishes this round: E, or for a ⌊s·m⌉ stragglers a uniform 1..E-1 (Li 2020, Sec. 5.1)."""
    n = round(cfg.stragglers * len(chosen))
    if n == 0:
        return {k: cfg.local_epochs for k in chosen}
    slow = set(rng.choice(chosen, size=n, replace=False).tolist())
    return {k: int(rng.integers(1, cfg.local_epochs)) if k in slow else cfg.local_epochs for k in chosen}


def client_seed(cfg: FLConfig, r: int, k: int) -> int:
    """The seed of client k's minibatch order in round r (the same in the simulator and over Flower)."""
    return cfg.seed * 7919 + r * 101 + k


def federated_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: FLConfig, *,
                    aggregate: Aggregator | None = None,
                    evaluate: Callable[[nn.Module], float] | None = None) -> tuple[nn.Module, list[dict]]:
    """FedAvg / FedProx rounds (McMahan 2017, Alg. 1): sample clients, local updates, aggregate; returns history."""
    aggregate = aggregate or (lambda states, sizes, r: weighted_average(states, sizes))
    parts = partition(y, cfg)
    rng = np.random.default_rng(cfg.seed)
    mu = cfg.mu if cfg.algorithm == "fedprox" else 0.0
    history = []
    for r in range(cfg.rounds):
        chosen = choose_clients(rng, cfg)
        epochs = straggler_epochs(rng, cfg, chosen)
        if cfg.algorithm == "fedavg":                   # FedAvg drops the clients that did not finish E epochs
            chosen = [k for k in chosen if epochs[k] == cfg.local_epochs]
        states, sizes = [], []
        for k in chosen:
            client = copy.deepcopy(model)
            states.append(local_update(client, x[parts[k]], y[parts[k]], epochs=epochs[k], batch_size=cfg.batch_size,
                                       lr=cfg.lr, mu=mu, seed=client_seed(cfg, r, k), momentum=cfg.momentum))
            sizes.append(float(len(parts[k])))
        if states:                                      # every client straggled: the global model stays
            model.load_state_dict(aggregate(states, sizes, r))
        history.append({"round": r + 1, "clients": len(chosen),
                        **({"test_acc": evaluate(model)} if evaluate is not None else {})})
    return model, history
