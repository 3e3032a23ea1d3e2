"""AI for science: neural operators for PDEs and equivariant networks for particles and molecules.

- :class:`FNO` — Fourier neural operator (Li et al. 2021), :func:`fno_from_neuralop` copies
  neuraloperator weights into it.
- :class:`EGNN` — E(n)-equivariant graph network (Satorras et al. 2021).
- :class:`SchNet` — continuous-filter convolutions over atoms (Schütt et al. 2017).
Data (Burgers, Darcy, charged N-body, MMFF94 conformers) is simulated here (``frontierkit.science.data``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["EGNN", "FNO", "SchNet", "fno_from_neuralop"]


def __getattr__(name: str) -> Any:
    """Import the model modules on first use (``frontier --help`` stays fast)."""
    if name in ("FNO", "fno_from_neuralop", "FNOConfig"):
        from . import fno
        return getattr(fno, name)
    if name in ("EGNN", "EGNNConfig"):
        from . import egnn
        return getattr(egnn, name)
    if name in ("SchNet", "SchNetConfig"):
        from . import schnet
        return getattr(schnet, name)
    raise AttributeError(f"module 'frontierkit.science' has no attribute {name!r}")
