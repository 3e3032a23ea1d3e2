"""Molecular dynamics: velocity Verlet (Swope et al. 1982) for any force field ``forces(x) -> (E, F)``, used
with RDKit's MMFF94 (Halgren 1996) to sample conformers and, with a learned SchNet, to check that the
learned potential conserves energy as well as the force field it learned from.

Units: positions in Angstrom, energies in kcal/mol, masses in amu, time in fs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["ACC", "KB", "kinetic_energy", "mmff_forces", "velocity_verlet"]

ACC = 4.184e-4
"""(kcal/mol/Angstrom) / amu in Angstrom/fs^2"""
KB = 0.0019872041
"""Boltzmann constant in kcal/mol/K"""

ForceFn = Callable[[np.ndarray], tuple[float, np.ndarray]]


def kinetic_energy(v: np.ndarray, masses: np.ndarray) -> float:
    """sum 1/2 m v^2 in kcal/mol (v in Angstrom/fs)."""
    return float(0.5 * np.sum(masses[:, None] * v ** 2) / ACC)


def velocity_verlet(forces: ForceFn, x: np.ndarray, v: np.ndarray, masses: np.ndarray, dt: float, steps: int,
                    every: int = 1) -> dict[str, np.ndarray]:
    """x(t+dt) = x + v dt + a dt^2/2, v(t+dt) = v + (a + a') dt/2; frames every ``every`` steps with E_pot, E_kin."""
    E, F = forces(x)
    a = ACC * F / masses[:, None]                                             # (N, 3) Angstrom/fs^2
    xs, ep, ek = [x.copy()], [E], [kinetic_energy(v, masses)]
    for step in range(1, steps + 1):
        x = x + v * dt + 0.5 * a * dt ** 2
        E, F = forces(x)
        a_new = ACC * F / masses[:, None]
        v = v + 0.5 * (a + a_new) * dt
        a = a_new
        if step % every == 0:
            xs.append(x.copy()); ep.append(E); ek.append(kinetic_energy(v, masses))  # noqa: E702
    return {"x": np.stack(xs), "e_pot": np.array(ep), "e_kin": np.array(ek), "v": v}


def mmff_forces(mol) -> ForceFn:
    """MMFF94 energy (kcal/mol) and forces -dE/dx (kcal/mol/Angstrom) of an RDKit molecule with hydrogens."""
    from ..errors import require_extra
    require_extra("rdkit", "science")
    from rdkit.Chem import AllChem
    ff = AllChem.MMFFGetMoleculeForceField(mol, AllChem.MMFFGetMoleculeProperties(mol))

    def forces(x: np.ndarray) -> tuple[float, np.ndarray]:
        flat = x.ravel().tolist()
        return ff.CalcEnergy(flat), -np.array(ff.CalcGrad(flat)).reshape(-1, 3)
    return forces


def maxwell_boltzmann(masses: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Velocities (N, 3) in Angstrom/fs at ``temperature`` K, zero total momentum."""
    v = rng.standard_normal((len(masses), 3)) * np.sqrt(KB * temperature * ACC / masses)[:, None]
    return v - (masses[:, None] * v).sum(0) / masses.sum()
