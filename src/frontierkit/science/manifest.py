"""The science area's manifest: ``frontier science``, its tour section and the model kinds
``fno`` (Fourier neural operator), ``egnn`` (E(n)-equivariant GNN) and ``schnet``."""
from __future__ import annotations

from typing import Any

from ..areas import Manifest, ModelKind

MANIFEST = Manifest(
    name="science", help="AI for science: FNO on Burgers/Darcy, EGNN on charged N-body, SchNet on MMFF94 molecules",
    commands="frontierkit.science.commands:register",
    tour={"science": "frontierkit.science.demo:tour"},
    kinds=(
        ModelKind("fno", build="frontierkit.science.fno:build_fno", classes=("frontierkit.science.fno:FNO",),
                  tags=frozenset({"operator"}), config_of="frontierkit.science.manifest:config_of",
                  description="Fourier neural operator: input function (B, C, *S) -> output function (B, C', *S)"),
        ModelKind("egnn", build="frontierkit.science.egnn:build_egnn", classes=("frontierkit.science.egnn:EGNN",),
                  tags=frozenset({"particles"}), config_of="frontierkit.science.manifest:config_of",
                  description="E(n)-equivariant GNN: (h, x, v, edges) -> updated coordinates"),
        ModelKind("schnet", build="frontierkit.science.schnet:build_schnet",
                  classes=("frontierkit.science.schnet:SchNet",), tags=frozenset({"potential"}),
                  config_of="frontierkit.science.manifest:config_of",
                  description="SchNet interatomic potential: (atomic numbers, positions) -> energy"),
    ),
)


def config_of(model) -> dict[str, Any]:
    from ..config import to_dict
    return to_dict(model.config)
