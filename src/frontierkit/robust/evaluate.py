"""Honest robustness evaluation (Carlini et al. 2019, "On Evaluating Adversarial Robustness", §4-5):
robust accuracy per ε under a ladder of attacks of growing strength — FGSM, PGD-20, PGD-100 with
restarts, APGD-CE (Croce & Hein 2020) — the per-sample worst case over them (as AutoAttack reports),
and sanity checks that reveal gradient masking (Athalye et al. 2018, §3.1):
robust accuracy falls as ε grows and reaches ~0 at an ε covering the whole input range, PGD is never
weaker than FGSM, and more steps/restarts never raise robust accuracy.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .attacks import apgd, fgsm, pgd

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]

__all__ = ["Attack", "correct_under", "ladder", "robustness_table", "sanity_checks", "large_eps_accuracy"]


def ladder(restarts: int = 5, *, eot: int = 1, seed: int = 0, clip_min: float = 0.0, clip_max: float = 1.0,
           long_steps: int = 100) -> dict[str, Attack]:
    """The L∞ evaluation ladder: fgsm, pgd-20, pgd-{long_steps}x{restarts}, apgd-ce ({long_steps} steps).
    PGD runs with early stop (a sample counts as broken once any iterate fools the model) and a fixed seed."""
    clip = dict(clip_min=clip_min, clip_max=clip_max, eot=eot)

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return {
        "fgsm": lambda m, x, y, e: fgsm(m, x, y, e, **clip),
        "pgd-20": lambda m, x, y, e: pgd(m, x, y, e, steps=20, early_stop=True, generator=gen(), **clip),
        f"pgd-{long_steps}x{restarts}": lambda m, x, y, e: pgd(m, x, y, e, steps=long_steps, restarts=restarts,
                                                           early_stop=True, generator=gen(), **clip),
        "apgd-ce": lambda m, x, y, e: apgd(m, x, y, e, steps=long_steps, seed=seed, **clip),
    }


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(-1)


def correct_under(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None, eps: float,
                  batch_size: int = 500) -> torch.Tensor:
    """(N,) bool: the model is right on the attacked input (on the clean one when ``attack`` is None or ε = 0)."""
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if attack is not None and eps > 0:
            xb = attack(model, xb, yb, eps)
        out.append(_predict(model, xb) == yb)
    return torch.cat(out)


def robustness_table(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: list[float],
                     attacks: dict[str, Attack], batch_size: int = 500) -> list[dict[str, float]]:
    """One row per ε: clean accuracy, accuracy under each attack, and ``worst`` (right under all of them)."""
    clean = correct_under(model, x, y, None, 0.0, batch_size)
    rows = []
    for eps in eps_values:
        row: dict[str, float] = {"eps": eps, "clean": clean.float().mean().item()}
        worst = clean.clone()
        for name, attack in attacks.items():
            ok = correct_under(model, x, y, attack, eps, batch_size) & clean if eps > 0 else clean
            row[name] = ok.float().mean().item()
            worst &= ok
        row["worst"] = worst.float().mean().item()
        rows.append(row)
    return rows


def large_eps_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack,
                       clip_min: float = 0.0, clip_max: float = 1.0) -> float:
    """Accuracy under ``attack`` at ε = the whole range (any input reachable): ~0 unless gradients are masked."""
    return correct_under(model, x, y, attack, clip_max - clip_min).float().mean().item()


def _attack_columns(row: dict[str, float]) -> list[str]:
    return [k for k in row if k not in ("eps", "clean", "worst")]


def sanity_checks(rows: list[dict[str, float]], large_eps_acc: float | None = None, tol: float = 0.0,
                  zero_level: float = 0.02) -> list[dict[str, object]]:
    """Gradient-masking checks on a :func:`robustness_table` (Carlini et al. 2019, §5.2; Athalye et al. 2018):
    each a dict ``check, passed, detail``; ``tol`` is the slack in accuracy (fraction of samples)."""
    cols = _attack_columns(rows[0])
    pgd_cols = [c for c in cols if c.startswith("pgd-")]
    checks = []
    for c in cols:
        vals = [r[c] for r in rows]
        checks.append({"check": f"{c}: accuracy falls as eps grows",
                       "passed": all(b <= a + tol for a, b in zip(vals, vals[1:])),
                       "detail": " -> ".join(f"{v:.3f}" for v in vals)})
    if "fgsm" in cols and pgd_cols:
        checks.append({"check": f"{pgd_cols[0]} never weaker than fgsm",
                       "passed": all(r[pgd_cols[0]] <= r["fgsm"] + tol for r in rows),
                       "detail": ", ".join(f"eps {r['eps']:g}: {r[pgd_cols[0]]:.3f} vs {r['fgsm']:.3f}" for r in rows)})
    if len(pgd_cols) >= 2:
        short, long = pgd_cols[0], pgd_cols[-1]
        checks.append({"check": f"{long} never above {short} (more steps/restarts)",
                       "passed": all(r[long] <= r[short] + tol for r in rows),
                       "detail": ", ".join(f"eps {r['eps']:g}: {r[long]:.3f} vs {r[short]:.3f}" for r in rows)})
    if large_eps_acc is not None:
        checks.append({"check": f"accuracy ~0 at eps = whole range (<= {zero_level})",
                       "passed": large_eps_acc <= zero_level, "detail": f"{large_eps_acc:.3f}"})
    return checks
