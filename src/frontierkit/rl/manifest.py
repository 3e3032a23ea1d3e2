"""The RL area's manifest: ``frontier rl``, its tour section and the ``rl-policy`` model kind
(PPO actor-critics, SAC/CQL tanh-Gaussian actors, IQL Gaussian policies)."""
from __future__ import annotations

from typing import Any

from ..areas import Manifest, ModelKind

MANIFEST = Manifest(
    name="rl", help="PPO, SAC, CQL, IQL; offline dataset collection",
    commands="frontierkit.rl.commands:register",
    tour={"rl": "frontierkit.rl.demo:tour"},
    kinds=(ModelKind("rl-policy", build="frontierkit.rl.common:build_policy",
                     classes=tuple(f"frontierkit.rl.nets:{c}" for c in ("ActorCritic", "TanhGaussianActor",
                                                                         "GaussianPolicy")),
                     tags=frozenset({"policy"}), detect="frontierkit.rl.manifest:detect",
                     description="a policy: observations -> actions"),),
)


def detect(meta: dict[str, Any]) -> bool:
    """An RL checkpoint written before config.json named its kind."""
    model = meta.get("model")
    return isinstance(model, dict) and "algo" in model and "policy" in model
