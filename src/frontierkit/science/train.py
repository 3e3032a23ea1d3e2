"""Training FNO on simulated Burgers / Darcy data with the kit's Trainer (Li et al. 2021, Sec. 5).

The loss is the paper's relative L2 error ``||u_pred - u|| / ||u||`` per sample (mean over the batch);
evaluation reports it on held-out samples at the training resolution and, zero-shot, on finer grids
(the same functions sampled 2x and 4x finer: the paper's super-resolution, Sec. 5.4).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..config import require
from ..train import TrainConfig
from .egnn import EGNNConfig
from .schnet import SchNetConfig
from .fno import FNO, FNOConfig

__all__ = ["FNODataConfig", "FNORunConfig", "SchNetDataConfig", "SchNetRunConfig", "eval_fno", "eval_schnet_on",
           "fno_data", "relative_l2", "schnet_data", "train_fno", "train_schnet"]

SOLVE_RES = {"burgers": 1024, "darcy": 85}
"""resolution each problem is solved at (Burgers subsampled from it; Darcy also solved at 169 for tests)"""


@dataclass(frozen=True, kw_only=True)
class FNODataConfig:
    """Which PDE, how many samples, at which training resolution."""
    problem: Literal["burgers", "darcy"] = "burgers"
    """burgers (1-D, a = u0 -> u(t=1)) or darcy (2-D, coefficient a -> pressure u)"""
    n_train: int = 1000
    """training samples"""
    n_test: int = 100
    """held-out samples"""
    s: int = 0
    """training resolution (0: burgers 256, darcy 43): burgers 64 .. 1024 in powers of 2; darcy 43 or 85"""
    nu: float = 0.01
    """Burgers viscosity (calibrated: see docs/science.md)"""

    def __post_init__(self) -> None:
        require(self.problem in ("burgers", "darcy"), "data.problem", self.problem, "burgers or darcy")
        require(self.n_train >= 1 and self.n_test >= 1, "data.n_train", self.n_train, "positive sample counts")
        if self.problem == "burgers":
            require(self.s in (0, 64, 128, 256, 512, 1024), "data.s", self.s, "64, 128, 256, 512 or 1024 for burgers")
        else:
            require(self.s in (0, 43, 85), "data.s", self.s, "43 or 85 for darcy (subsampled from the 85 solve)")

    @property
    def res(self) -> int:
        """The training resolution (s, or the problem's default when s = 0)."""
        return self.s or (256 if self.problem == "burgers" else 43)


@dataclass(frozen=True, kw_only=True)
class FNORunConfig:
    """``frontier science train fno``: data + model + training."""
    data: FNODataConfig = field(default_factory=FNODataConfig)
    model: FNOConfig = field(default_factory=lambda: FNOConfig(n_modes=(32,), hidden_channels=64,
                                                               use_channel_mlp=False, lifting_channel_ratio=0))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, batch_size=20, lr=1e-3,
                                                                   weight_decay=1e-4, warmup_steps=0,
                                                                   min_lr_ratio=0.01, log_every=50))

    def __post_init__(self) -> None:
        require(len(self.model.n_modes) == (1 if self.data.problem == "burgers" else 2), "model.n_modes",
                self.model.n_modes, f"one mode count per spatial dimension of {self.data.problem} "
                                    f"(e.g. --model.n_modes {'[32]' if self.data.problem == 'burgers' else '[12,12]'})")


DARCY_A = (7.5, 4.5)
"""Darcy input encoding: (a - 7.5) / 4.5 maps the coefficient {3, 12} to {-1, 1}"""
DARCY_U = 100.0
"""Darcy target scale: u * 100 is O(1) (relative L2 is unchanged by it)"""


def encode(problem: str, a: np.ndarray, u: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, *S) arrays -> (N, 1, *S) model input and target tensors."""
    if problem == "darcy":
        a, u = (a - DARCY_A[0]) / DARCY_A[1], u * DARCY_U
    return torch.from_numpy(np.ascontiguousarray(a)).float().unsqueeze(1), \
        torch.from_numpy(np.ascontiguousarray(u)).float().unsqueeze(1)


def fno_data(cfg: FNODataConfig, split: Literal["train", "test"], s: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, u) of ``split`` at resolution s (default: the training one), each (N, 1, *S)."""
    from . import data
    s = s or cfg.res
    if cfg.problem == "burgers":
        d = data.burgers(cfg.n_train + cfg.n_test, SOLVE_RES["burgers"], nu=cfg.nu)
        rows = slice(0, cfg.n_train) if split == "train" else slice(cfg.n_train, cfg.n_train + cfg.n_test)
        r = SOLVE_RES["burgers"] // s
        return encode("burgers", d["a"][rows, ::r], d["u"][rows, ::r])
    if s == 169:                                               # finer test grid: solved separately
        d = data.darcy(min(cfg.n_test, 50), 169, seed=1)
    else:
        d = data.darcy(cfg.n_train, 85, seed=0) if split == "train" else data.darcy(cfg.n_test, 85, seed=1)
    r = {43: 2, 85: 1, 169: 1}[s]
    return encode("darcy", d["a"][:, ::r, ::r], d["u"][:, ::r, ::r])


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||pred - target||_2 / ||target||_2`` (Li et al. 2021, Sec. 5), (N, ...) -> (N,)."""
    diff = (pred - target).flatten(1).norm(dim=1)   # (N,)
    return diff / target.flatten(1).norm(dim=1)


def rel_l2_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, u = batch
    return relative_l2(model(a), u).mean()


@torch.no_grad()
def eval_rel_l2(model: nn.Module, a: torch.Tensor, u: torch.Tensor, batch: int = 50) -> float:
    """Mean relative L2 error of ``model`` over (a, u)."""
    model.eval()
    errs = torch.cat([relative_l2(model(a[i:i + batch]), u[i:i + batch]) for i in range(0, len(a), batch)])
    return float(errs.mean())


def finer_resolutions(cfg: FNODataConfig) -> list[int]:
    """Zero-shot test grids, 2x and 4x the training one where the data has them."""
    if cfg.problem == "burgers":
        return [s for s in (2 * cfg.res, 4 * cfg.res) if s <= SOLVE_RES["burgers"]]
    return [85, 169] if cfg.res == 43 else [169]


def eval_fno(model: nn.Module, cfg: FNODataConfig) -> dict[str, float]:
    """Relative L2 on the test split at the training resolution and at each finer one."""
    out = {}
    for s in [cfg.res, *finer_resolutions(cfg)]:
        out[f"rel_l2@{s}"] = eval_rel_l2(model, *fno_data(cfg, "test", s))
    return out


def train_fno(cfg: FNORunConfig, out: str | Path, *, model: nn.Module | None = None, tracker: Any = None,
              quiet: bool = True) -> tuple[nn.Module, dict[str, float]]:
    """Train an FNO (or ``model``, e.g. a baseline) on cfg.data with the kit's Trainer; returns it and eval_fno."""
    from ..config import to_dict
    from ..data import TensorBatches
    from ..train import Trainer

    torch.manual_seed(cfg.train.seed)
    model = model if model is not None else FNO(cfg.model)
    a, u = fno_data(cfg.data, "train")
    a_test, u_test = fno_data(cfg.data, "test")
    trainer = Trainer(model, rel_l2_loss, TensorBatches(a, u, batch_size=cfg.train.batch_size, seed=cfg.train.seed),
                      cfg.train, out=out, tracker=tracker, eval_fn=lambda m: {"rel_l2": eval_rel_l2(m, a_test, u_test)},
                      run_config=to_dict(cfg), model_config=to_dict(cfg.model) if isinstance(model, FNO) else {},
                      quiet=quiet, progress_desc=f"fno {cfg.data.problem}")
    trainer.fit(resume=False)
    return model, eval_fno(model, cfg.data)


# -- N-body (Satorras et al. 2021, Sec. 5.1) -------------------------------------------------------------

def nbody_tensors(n: int, split: str) -> tuple[torch.Tensor, ...]:
    """(loc, vel, charges, target) of the N-body task: (n, 5, 3), (n, 5, 3), (n, 5), (n, 5, 3)."""
    from . import data
    d = data.nbody(n, split)
    return tuple(torch.from_numpy(d[k]) for k in ("loc", "vel", "charges", "target"))


def nbody_predict(model: nn.Module, loc: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
    """Positions 1000 steps ahead from an EGNN (h = |v|, a_ij = q_i q_j) or the plain GNN (h = [x, v]): (B, M, 3)."""
    from .egnn import EGNN, fully_connected_edges
    B, M, _ = loc.shape
    edges = fully_connected_edges(B, M)                                       # (2, B M (M-1))
    q = charges.reshape(B * M)
    a = (q[edges[0]] * q[edges[1]]).unsqueeze(-1)                             # (E, 1)
    x, v = loc.reshape(B * M, 3), vel.reshape(B * M, 3)                       # (B M, 3)
    if isinstance(model, EGNN):
        _, x_out = model(v.norm(dim=-1, keepdim=True), x, edges, v=v, edge_attr=a)
    else:
        x_out = model(torch.cat([x, v], dim=-1), edges, a)
    return x_out.reshape(B, M, 3)


def nbody_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """MSE of predicted positions (the paper's metric)."""
    loc, vel, charges, target = batch
    return (nbody_predict(model, loc, vel, charges) - target).pow(2).mean()


@torch.no_grad()
def eval_nbody(model: nn.Module, tensors: tuple[torch.Tensor, ...], batch: int = 500) -> float:
    """Test MSE over all samples."""
    model.eval()
    n = len(tensors[0])
    total = sum(float(nbody_loss(model, tuple(t[i:i + batch] for t in tensors))) * len(tensors[0][i:i + batch])
                for i in range(0, n, batch))
    return total / n


def train_nbody(model: nn.Module, out: str | Path, *, n_train: int = 3000, n_test: int = 2000, steps: int = 600,
                batch_size: int = 100, lr: float = 1e-3, seed: int = 0, quiet: bool = True,
                tracker: Any = None) -> tuple[nn.Module, float]:
    """Train an EGNN / GNN on the N-body task with the kit's Trainer; returns it and its test MSE."""
    from ..config import to_dict
    from ..data import TensorBatches
    from ..train import Trainer
    train, test = nbody_tensors(n_train, "train"), nbody_tensors(n_test, "test")
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=1e-12, warmup_steps=0,
                      min_lr_ratio=0.01, log_every=50, grad_clip=0.0, seed=seed)
    torch.manual_seed(seed)
    config = getattr(model, "config", None)
    Trainer(model, nbody_loss, TensorBatches(*train, batch_size=batch_size, seed=seed), cfg, out=out, tracker=tracker,
            eval_fn=None, run_config={"train": to_dict(cfg), "data": {"n_train": n_train}},
            model_config=to_dict(config) if config is not None else {}, quiet=quiet,
            progress_desc=f"nbody {type(model).__name__}").fit(resume=False)
    return model, eval_nbody(model, test)


@dataclass(frozen=True, kw_only=True)
class EGNNRunConfig:
    """``frontier science train egnn``: the N-body task (Satorras et al. 2021, Sec. 5.1)."""
    model: EGNNConfig = field(default_factory=EGNNConfig)
    n_train: int = 3000
    """training trajectories (paper: 3000)"""
    n_test: int = 2000
    """test trajectories (paper: 2000)"""
    steps: int = 400
    """optimizer steps (paper: 10,000 epochs = 300,000 steps)"""
    batch_size: int = 100
    """trajectories per step (paper: 100)"""
    lr: float = 1e-3
    """peak learning rate, cosine decay (paper: 5e-4 constant)"""
    seed: int = 0
    """training seed"""

    def __post_init__(self) -> None:
        require(self.n_train >= self.batch_size >= 1, "batch_size", self.batch_size, "1 .. n_train")
        require(self.steps >= 1 and self.n_test >= 1, "steps", self.steps, "positive steps and n_test")



# -- SchNet on MMFF94 conformers (Schütt et al. 2017, Sec. 4) ---------------------------------------------

def _molecule_batch(z: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, A, 3) conformers of one molecule -> flat z (B A,), pos (B A, 3), batch (B A,)."""
    B, A, _ = pos.shape
    return z.repeat(B), pos.reshape(B * A, 3), torch.arange(B).repeat_interleave(A)


def energy_force_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], z: torch.Tensor, rho: float = 0.01
                      ) -> tuple[torch.Tensor, dict[str, float]]:
    """rho ||E - E_hat||^2 + ||F + dE_hat/dR||^2 / (3A) (Schütt et al. 2017, Sec. 4.2), in units of the force std."""
    from .schnet import energy_and_forces
    pos, energy, forces = batch
    zf, posf, b = _molecule_batch(z, pos)
    E, F = energy_and_forces(model, zf, posf, b, create_graph=model.training)
    s = model.energy_scale
    e_loss = ((E - energy) / s).pow(2).mean()
    f_loss = ((F - forces.reshape(-1, 3)) / s).pow(2).mean()
    return rho * e_loss + f_loss, {"e_mse": float(e_loss.detach()), "f_mse": float(f_loss.detach())}


def eval_schnet(model: nn.Module, z: torch.Tensor, pos: torch.Tensor, energy: torch.Tensor, forces: torch.Tensor,
                batch: int = 100) -> dict[str, float]:
    """Energy MAE (kcal/mol) and force-component MAE (kcal/mol/Angstrom) on conformers."""
    from .schnet import energy_and_forces
    model.eval()
    e_err, f_err = [], []
    for i in range(0, len(pos), batch):
        E, F = energy_and_forces(model, *_molecule_batch(z, pos[i:i + batch]))
        e_err.append((E.detach() - energy[i:i + batch]).abs())
        f_err.append((F.detach() - forces[i:i + batch].reshape(-1, 3)).abs().flatten())
    return {"energy_mae": float(torch.cat(e_err).mean()), "force_mae": float(torch.cat(f_err).mean())}


def train_schnet(model: nn.Module, train: dict[str, Any], out: str | Path, *, steps: int = 300, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = 0, quiet: bool = True, tracker: Any = None, rho: float = 0.01,
                 train_cfg: TrainConfig | None = None, run_config: dict[str, Any] | None = None) -> nn.Module:
    """Fit SchNet to conformers (dict z, pos, energy, forces as numpy) with the energy+force loss and the Trainer
    (``train_cfg`` replaces steps / batch_size / lr / seed when given)."""
    from ..config import to_dict
    from ..data import TensorBatches
    from ..train import Trainer
    z = torch.from_numpy(train["z"]).long()
    pos, energy, forces = (torch.from_numpy(train[k]).float() for k in ("pos", "energy", "forces"))
    with torch.no_grad():                                   # per-atom offset and scale from the training set
        model.energy_shift.fill_(float(energy.mean()) / len(z))
        model.energy_scale.fill_(float(forces.std()))
    cfg = train_cfg or TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.0, warmup_steps=0,
                                   min_lr_ratio=0.02, log_every=50, grad_clip=0.0, seed=seed)
    if cfg.batch_size > len(pos):
        from dataclasses import replace
        cfg = replace(cfg, batch_size=len(pos))
    torch.manual_seed(cfg.seed)
    Trainer(model, lambda m, b: energy_force_loss(m, b, z, rho), TensorBatches(pos, energy, forces,
            batch_size=cfg.batch_size, seed=cfg.seed), cfg, out=out, tracker=tracker,
            run_config=run_config or {"train": to_dict(cfg), "data": {"n_train": len(pos)}},
            model_config=to_dict(model.config), quiet=quiet, progress_desc="schnet").fit(resume=False)
    return model


@dataclass(frozen=True, kw_only=True)
class SchNetDataConfig:
    """Conformers of one molecule from MMFF94 molecular dynamics, labelled by MMFF94 (not DFT)."""
    smiles: str = "CCO"
    """the molecule (default ethanol, as MD17's)"""
    n_train: int = 800
    """training conformers (every 10th MD frame of trajectory seed 0)"""
    n_test: int = 200
    """held-out conformers (a separate trajectory, seed 1)"""
    temperature: float = 500.0
    """MD temperature in K"""

    def __post_init__(self) -> None:
        require(bool(self.smiles.strip()), "data.smiles", self.smiles, "a SMILES string such as CCO")
        require(1 <= self.n_train <= 100_000, "data.n_train", self.n_train, "1 .. 100000 conformers")
        require(1 <= self.n_test <= 100_000, "data.n_test", self.n_test, "1 .. 100000 conformers")
        require(0 < self.temperature <= 5000, "data.temperature", self.temperature, "0 < T <= 5000 K")


@dataclass(frozen=True, kw_only=True)
class SchNetRunConfig:
    """``frontier science train schnet``: energy+force fit on MMFF94 conformers (Schütt et al. 2017, Sec. 4.2)."""
    data: SchNetDataConfig = field(default_factory=SchNetDataConfig)
    model: SchNetConfig = field(default_factory=SchNetConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=600, batch_size=32, lr=3e-3, weight_decay=0.0,
                                                                   warmup_steps=0, min_lr_ratio=0.02, log_every=50,
                                                                   grad_clip=0.0))
    rho: float = 0.01
    """energy weight of the loss rho |E - E_hat|^2 + |F - F_hat|^2 (paper: 0.01)"""

    def __post_init__(self) -> None:
        require(0 <= self.rho <= 1e6, "rho", self.rho, "a non-negative energy weight")


def schnet_data(cfg: SchNetDataConfig, split: Literal["train", "test"]) -> dict[str, np.ndarray]:
    """The conformers of ``split`` (numpy dict z, masses, pos, energy, forces), simulated once and cached."""
    from . import data
    if split == "train":
        return data.mmff_conformers(cfg.smiles, n=cfg.n_train, temperature=cfg.temperature, every=10, seed=0)
    return data.mmff_conformers(cfg.smiles, n=cfg.n_test, temperature=cfg.temperature, every=10, seed=1)


def eval_schnet_on(model: nn.Module, cfg: SchNetDataConfig) -> dict[str, float]:
    """Energy / force MAE of ``model`` on the held-out conformers of cfg."""
    test = schnet_data(cfg, "test")
    z = torch.from_numpy(test["z"]).long()
    return eval_schnet(model, z, *(torch.from_numpy(test[k]).float() for k in ("pos", "energy", "forces")))
