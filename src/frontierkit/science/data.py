"""PDE data simulated here, as the FNO paper's generators do (Li et al. 2021, Sec. 5.1-5.2).

- 1-D viscous Burgers ``u_t + (u^2/2)_x = nu u_xx`` on the periodic [0, 1): ``u0 ~ N(0, 625(-Delta + 25 I)^-2)``,
  pseudo-spectral in space (2/3 de-aliasing), ETDRK4 in time (Cox & Matthews 2002; Kassam &
  Trefethen 2005 contour coefficients), solved to t = 1 on a fine grid and subsampled.
- 2-D Darcy flow ``-div(a grad u) = 1`` on (0, 1)^2, ``u = 0`` on the boundary: ``a = 12`` where
  ``psi >= 0`` else ``3``, ``psi ~ N(0, (-Delta + 9 I)^-2)`` with zero Neumann conditions (cosine
  series, so the same field can be sampled at any resolution), 5-point finite differences with
  harmonic-mean face coefficients, sparse direct solve (scipy).

Every generator is deterministic in its seed and cached as .npz under ``$FRONTIERKIT_CACHE/science``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

import numpy as np

from ..data import cache_dir

__all__ = ["burgers", "burgers_energy_fraction", "cached", "darcy", "grf_burgers", "grf_darcy", "solve_burgers",
           "solve_darcy"]


def cached(name: str, params: dict[str, Any], make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``make()`` once per (name, params); later calls read ``$FRONTIERKIT_CACHE/science/<name>-<hash>.npz``."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / "science" / f"{name}-{key}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    arrays = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


# -- Burgers ---------------------------------------------------------------------------------------

def grf_burgers(n: int, s: int, rng: np.random.Generator, sigma2: float = 625.0, tau2: float = 25.0,
                gamma: float = 2.0) -> np.ndarray:
    """n draws of ``N(0, sigma2 (-Delta + tau2 I)^-gamma)`` on the periodic [0, 1) at s points (paper Sec. 5.2)."""
    k = np.arange(1, s // 2)                                                # positive wavenumbers below Nyquist
    sqrt_lam = np.sqrt(sigma2) * ((2 * np.pi * k) ** 2 + tau2) ** (-gamma / 2)
    xi = rng.standard_normal((n, len(k))) + 1j * rng.standard_normal((n, len(k)))
    u_hat = np.zeros((n, s // 2 + 1), complex)
    u_hat[:, 1:s // 2] = s * sqrt_lam * xi / np.sqrt(2)                     # irfft -> sqrt(lam)(xi sqrt2 cos + eta sqrt2 sin)
    return np.fft.irfft(u_hat, n=s)                                         # (n, s)


def _etdrk4_coefficients(L: np.ndarray, dt: float, m: int = 32) -> tuple[np.ndarray, ...]:
    """ETDRK4 coefficients by contour integrals (Kassam & Trefethen 2005, eq. 2.5 + Sec. 5)."""
    E, E2 = np.exp(dt * L), np.exp(dt * L / 2)
    r = np.exp(1j * np.pi * (np.arange(1, m + 1) - 0.5) / m)
    LR = dt * L[:, None] + r[None, :]                                       # (K, m)
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR ** 2)) / LR ** 3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR ** 3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR ** 2 + np.exp(LR) * (4 - LR)) / LR ** 3, axis=1))
    return E, E2, Q, f1, f2, f3


def solve_burgers(u0: np.ndarray, nu: float, t_end: float = 1.0, dt: float = 1e-3) -> np.ndarray:
    """Burgers ``u_t = -(u^2/2)_x + nu u_xx`` from u0 (n, s) to t_end: pseudo-spectral + ETDRK4."""
    n, s = u0.shape
    k = 2 * np.pi * np.fft.rfftfreq(s, d=1.0 / s)                           # (s//2+1,) angular wavenumbers
    L = -nu * k ** 2
    dealias = np.arange(len(k)) < (2 * (s // 2)) // 3                      # 2/3 rule
    g = -0.5j * k * dealias                                                 # N(v) = g * fft(ifft(v)^2)

    def N(v: np.ndarray) -> np.ndarray:
        return g * np.fft.rfft(np.fft.irfft(v, n=s) ** 2)

    E, E2, Q, f1, f2, f3 = _etdrk4_coefficients(L, dt)
    v = np.fft.rfft(u0)                                                     # (n, s//2+1)
    for _ in range(int(round(t_end / dt))):
        Nv = N(v)
        a = E2 * v + Q * Nv
        Na = N(a)
        b = E2 * v + Q * Na
        Nb = N(b)
        c = E2 * a + Q * (2 * Nb - Nv)
        Nc = N(c)
        v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
    return np.fft.irfft(v, n=s)


def burgers_energy_fraction(u0: np.ndarray, u1: np.ndarray) -> float:
    """Fraction of u0's energy (mean of u^2, over samples) that survives to u1."""
    return float(np.mean(np.sum(u1 ** 2, axis=1) / np.sum(u0 ** 2, axis=1)))


def burgers(n: int, s_solve: int = 1024, nu: float = 0.01, seed: int = 0, dt: float = 4e-3) -> dict[str, np.ndarray]:
    """n Burgers pairs (a = u0, u = u(t=1)) on an s_solve grid, cached; subsample ``[:, ::r]`` for coarser s."""
    params = {"n": n, "s": s_solve, "nu": nu, "seed": seed, "dt": dt, "v": 1}

    def make() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        a = grf_burgers(n, s_solve, rng)
        u = np.concatenate([solve_burgers(a[i:i + 100], nu, dt=dt) for i in range(0, n, 100)])
        return {"a": a.astype(np.float32), "u": u.astype(np.float32)}
    return cached("burgers", params, make)


# -- Darcy -----------------------------------------------------------------------------------------

def grf_darcy(n: int, rng: np.random.Generator, modes: int = 32, alpha: float = 2.0,
              tau: float = 3.0) -> np.ndarray:
    """Cosine coefficients (n, modes, modes) of ``psi ~ N(0, (-Delta + tau^2 I)^-alpha)``, zero Neumann."""
    k1, k2 = np.meshgrid(np.arange(modes), np.arange(modes), indexing="ij")
    sqrt_lam = (np.pi ** 2 * (k1 ** 2 + k2 ** 2) + tau ** 2) ** (-alpha / 2)
    sqrt_lam[0, 0] = 0.0                                                    # zero-mean field
    return rng.standard_normal((n, modes, modes)) * sqrt_lam


def darcy_coefficient(xi: np.ndarray, s: int) -> np.ndarray:
    """``a = 12 if psi >= 0 else 3`` with psi from cosine coefficients xi (n, K, K), sampled on an s x s grid of [0, 1]^2."""
    x = np.linspace(0.0, 1.0, s)
    C = np.cos(np.pi * np.outer(x, np.arange(xi.shape[1])))                # (s, K)
    psi = np.einsum("ik,nkl,jl->nij", C, xi, C)                             # (n, s, s)
    return np.where(psi >= 0, 12.0, 3.0)


def solve_darcy(a: np.ndarray, f: float = 1.0) -> np.ndarray:
    """``-div(a grad u) = f``, u = 0 on the boundary of the s x s node grid of [0, 1]^2: 5-point FD, harmonic faces."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    s = a.shape[0]
    h, m = 1.0 / (s - 1), s - 2                                             # interior is m x m
    hm = lambda p, q: 2 * p * q / (p + q)                                   # noqa: E731 harmonic mean
    ae = hm(a[1:-1, 1:-1], a[2:, 1:-1])                                     # face (i+1/2, j), (m, m)
    aw = hm(a[1:-1, 1:-1], a[:-2, 1:-1])
    an = hm(a[1:-1, 1:-1], a[1:-1, 2:])
    as_ = hm(a[1:-1, 1:-1], a[1:-1, :-2])
    idx = np.arange(m * m).reshape(m, m)
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [(ae + aw + an + as_).ravel()]
    for coef, di, dj in ((ae, 1, 0), (aw, -1, 0), (an, 0, 1), (as_, 0, -1)):
        i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        ok = (i + di >= 0) & (i + di < m) & (j + dj >= 0) & (j + dj < m)
        rows.append(idx[ok]); cols.append(idx[i[ok] + di, j[ok] + dj]); vals.append(-coef[ok])  # noqa: E702
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m))
    u = np.zeros((s, s))
    u[1:-1, 1:-1] = spla.spsolve(A / h ** 2, np.full(m * m, f)).reshape(m, m)
    return u


def darcy(n: int, s: int = 85, seed: int = 0) -> dict[str, np.ndarray]:
    """n Darcy pairs (a, u) on an s x s grid, cached; the same seed gives the same fields at every s."""
    params = {"n": n, "s": s, "seed": seed, "v": 1}

    def make() -> dict[str, np.ndarray]:
        a = darcy_coefficient(grf_darcy(n, np.random.default_rng(seed)), s)
        u = np.stack([solve_darcy(ai) for ai in a])
        return {"a": a.astype(np.float32), "u": u.astype(np.float32)}
    return cached("darcy", params, make)


# -- charged N-body (Kipf et al. 2018's simulator in 3-D, as used by Satorras et al. 2021, Sec. 5.1) --------

def simulate_charged(n_sims: int, n_balls: int = 5, steps: int = 4001, sample_freq: int = 100, dt: float = 1e-3,
                     loc_std: float = 1.0, vel_norm: float = 0.5, strength: float = 1.0,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Charged particles, ``F_i = sum_j q_i q_j (x_i - x_j) / |x_i - x_j|^3`` (clipped to 0.1 / dt), leapfrog with
    ``dt``, no bounding box; frames every ``sample_freq`` steps: loc, vel (n_sims, frames, n_balls, 3), charges."""
    rng = np.random.default_rng(seed)
    q = rng.choice([1.0, -1.0], size=(n_sims, n_balls))                       # (B, M)
    x = rng.standard_normal((n_sims, n_balls, 3)) * loc_std                   # (B, M, 3)
    v = rng.standard_normal((n_sims, n_balls, 3))
    v = v * vel_norm / np.linalg.norm(v, axis=-1, keepdims=True)
    qq = q[:, :, None] * q[:, None, :]                                        # (B, M, M)
    max_f = 0.1 / dt

    def force(x: np.ndarray) -> np.ndarray:
        diff = x[:, :, None, :] - x[:, None, :, :]                            # (B, M, M, 3)
        r3 = np.sum(diff ** 2, -1) ** 1.5                                     # (B, M, M)
        np.einsum("bii->bi", r3)[...] = np.inf                                # no self force
        return np.clip(np.sum((strength * qq / r3)[..., None] * diff, axis=2), -max_f, max_f)  # (B, M, 3)

    locs, vels = [x.copy()], [v.copy()]
    v = v + dt * force(x)
    for step in range(1, steps):
        x = x + dt * v
        if step % sample_freq == 0:
            locs.append(x.copy()); vels.append(v.copy())  # noqa: E702
        v = v + dt * force(x)
    return {"loc": np.stack(locs, 1).astype(np.float32), "vel": np.stack(vels, 1).astype(np.float32),
            "charges": q.astype(np.float32)}


def nbody(n_sims: int, split: str = "train", frame_0: int = 30, frame_t: int = 40) -> dict[str, np.ndarray]:
    """EGNN's N-body task: (loc, vel) at frame 30 -> loc at frame 40 (1000 steps later), cached per split."""
    seed = {"train": 0, "valid": 1, "test": 2}[split]
    params = {"n": n_sims, "seed": seed, "f0": frame_0, "ft": frame_t, "v": 1}

    def make() -> dict[str, np.ndarray]:
        sim = simulate_charged(n_sims, steps=frame_t * 100 + 1, seed=seed)
        return {"loc": sim["loc"][:, frame_0], "vel": sim["vel"][:, frame_0], "charges": sim["charges"],
                "target": sim["loc"][:, frame_t]}
    return cached("nbody", params, make)


# -- molecules labelled with MMFF94 (RDKit) --------------------------------------------------------------

def molecule(smiles: str = "CCO", seed: int = 0):
    """An RDKit molecule with hydrogens and one MMFF94-minimised 3-D conformer."""
    from ..errors import require_extra
    require_extra("rdkit", "science")
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem
    from ..errors import DataError
    RDLogger.DisableLog("rdApp.*")                                   # our one-line error instead of RDKit's log
    try:
        parsed = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if parsed is None:
        raise DataError(f"smiles={smiles!r} is not a SMILES string RDKit can parse; give one such as CCO (ethanol)")
    mol = Chem.AddHs(parsed)
    if mol.GetNumAtoms() < 2 or AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise DataError(f"smiles={smiles!r}: RDKit cannot embed it in 3-D; give a small organic molecule such as CCO")
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        raise DataError(f"smiles={smiles!r}: MMFF94 has no parameters for it; give a small organic molecule such as CCO")
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def mmff_conformers(smiles: str = "CCO", n: int = 1200, temperature: float = 500.0, dt: float = 0.5,
                    every: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """n conformers from MMFF94 velocity-Verlet MD at ``temperature`` K (an MD17-like trajectory, but labelled
    by MMFF94, not DFT): z (A,), pos (n, A, 3) Angstrom, energy (n,) kcal/mol, forces (n, A, 3) kcal/mol/Angstrom."""
    params = {"smiles": smiles, "n": n, "T": temperature, "dt": dt, "every": every, "seed": seed, "v": 1}

    def make() -> dict[str, np.ndarray]:
        from .md import maxwell_boltzmann, mmff_forces, velocity_verlet
        mol = molecule(smiles, seed)
        masses = np.array([a.GetMass() for a in mol.GetAtoms()])
        forces = mmff_forces(mol)
        x0 = mol.GetConformer().GetPositions()
        v0 = maxwell_boltzmann(masses, 2 * temperature, np.random.default_rng(seed))  # equipartition: half goes to E_pot
        traj = velocity_verlet(forces, x0, v0, masses, dt, n * every, every=every)
        pos = traj["x"][1:]
        labels = [forces(p) for p in pos]
        return {"z": np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), "masses": masses,
                "pos": pos.astype(np.float64), "energy": np.array([e for e, _ in labels]),
                "forces": np.stack([f for _, f in labels])}
    return cached("mmff", params, make)
