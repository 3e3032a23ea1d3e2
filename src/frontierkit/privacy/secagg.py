"""Secure aggregation by pairwise additive masking (Bonawitz, Ivanov, Kreuter, Marcedone, McMahan,
Patel, Ramage, Segal, Seth 2017, "Practical Secure Aggregation for Privacy-Preserving Machine Learning").

Every pair of clients u < v agrees on a seed s_uv (in the protocol by Diffie-Hellman key agreement;
simulated here by a shared generator). Client u sends y_u = x_u + Σ_{v>u} PRG(s_uv) - Σ_{v<u} PRG(s_uv):
each masked vector alone looks like noise, and the masks cancel in Σ_u y_u = Σ_u x_u. Dropout
handling (Sec. 3, round 4): for a client that dropped after masks were agreed, the survivors
reveal their seeds with it and the server removes the masks it left uncancelled.
Masks are real-valued here (the protocol masks integers mod 2^b after quantisation).
"""
from __future__ import annotations

import torch


def pair_seed(round_seed: int, u: int, v: int) -> int:
    """s_uv = s_vu: the seed clients u and v share this round (stands in for their DH key agreement)."""
    a, b = min(u, v), max(u, v)
    return (round_seed * 1_000_003 + a * 10_007 + b) % (2 ** 62)


def prg(seed: int, numel: int, scale: float) -> torch.Tensor:
    """PRG(s): a pseudorandom mask vector, (numel,)."""
    return torch.randn(numel, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def pairwise_mask(u: int, clients: list[int], numel: int, round_seed: int, scale: float) -> torch.Tensor:
    """Σ_{v>u} PRG(s_uv) - Σ_{v<u} PRG(s_uv) (Bonawitz 2017, Sec. 3 "masking with one-time pads"), (numel,)."""
    mask = torch.zeros(numel, dtype=torch.float64)
    for v in clients:
        if v != u:
            mask += (1 if v > u else -1) * prg(pair_seed(round_seed, u, v), numel, scale)
    return mask


def mask_update(x: torch.Tensor, u: int, clients: list[int], round_seed: int, scale: float = 100.0) -> torch.Tensor:
    """y_u = x_u + pairwise mask: what client u sends to the server, (numel,) float64."""
    return x.double().flatten() + pairwise_mask(u, clients, x.numel(), round_seed, scale)


def secure_sum(masked: dict[int, torch.Tensor], clients: list[int], round_seed: int,
               scale: float = 100.0) -> torch.Tensor:
    """Σ_u y_u over the clients that answered; masks shared with dropped clients are removed with the
    seeds the survivors reveal (Bonawitz 2017, round 4 "unmasking"), (numel,)."""
    survivors = sorted(masked)
    total = torch.stack([masked[u] for u in survivors]).sum(0)                   # (numel,)
    for d in sorted(set(clients) - set(survivors)):
        for u in survivors:                                                        # y_u carried ±PRG(s_ud)
            total -= (1 if d > u else -1) * prg(pair_seed(round_seed, u, d), total.numel(), scale)
    return total


def flatten_state(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.double().flatten() for t in state.values()])              # (P,)


def unflatten_state(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for n, t in like.items():
        out[n] = flat[i:i + t.numel()].view(t.shape).to(t.dtype)
        i += t.numel()
    return out


def secure_weighted_average(states: list[dict[str, torch.Tensor]], sizes: list[float], round_: int,
                            seed: int = 0) -> dict[str, torch.Tensor]:
    """FedAvg's weighted mean where the server sees only masked n_k·w_k and their sum (plus Σ n_k)."""
    clients = list(range(len(states)))
    masked = {u: mask_update(sizes[u] * flatten_state(s), u, clients, seed * 100_003 + round_)
              for u, s in enumerate(states)}
    return unflatten_state(secure_sum(masked, clients, seed * 100_003 + round_) / sum(sizes), states[0])
