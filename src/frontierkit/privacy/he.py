"""Homomorphic encryption with CKKS (Cheon, Kim, Kim, Song 2017, "Homomorphic Encryption for
Arithmetic of Approximate Numbers") through TenSEAL (Benaissa et al. 2021; Microsoft SEAL underneath).

- Encrypted inference: the client encrypts its features, the server — holding a context *without*
  the secret key — evaluates a linear layer or a small MLP whose activation is a polynomial
  (x², as in CryptoNets, Gilad-Bachrach et al. 2016), the client decrypts the logits. Each
  ciphertext-plaintext product consumes one level of the modulus chain: the preset's depth must
  cover the model's multiplications.
- Encrypted federated aggregation: clients encrypt n_k·w_k, the server adds ciphertexts, the key
  holder decrypts the sum.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, require_extra

PRESETS: dict[str, dict[str, Any]] = {
    # poly degree N (N/2 slots), modulus chain bit sizes (depth = len - 2), scale 2^bits; all <= SEAL's
    # 128-bit-security modulus budget (109 bits at N = 4096, 218 at 8192)
    "depth1": {"poly_modulus_degree": 4096, "coeff_mod_bit_sizes": [40, 25, 40], "scale_bits": 25},
    "depth2": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60], "scale_bits": 40},
    "depth3": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [50, 35, 35, 35, 50], "scale_bits": 35},
}


def preset_depth(preset: str) -> int:
    """Multiplicative depth of a preset: the number of rescalable middle primes."""
    return len(PRESETS[preset]["coeff_mod_bit_sizes"]) - 2


def make_context(preset: str = "depth3"):
    """A CKKS context with secret key, Galois keys (rotations for dot products) and relinearisation keys."""
    ts = require_extra("tenseal", "he")
    if preset not in PRESETS:
        raise ConfigError(f"he preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=p["poly_modulus_degree"],
                     coeff_mod_bit_sizes=p["coeff_mod_bit_sizes"])
    ctx.global_scale = 2 ** p["scale_bits"]
    ctx.generate_galois_keys()
    return ctx


def public_context(ctx) -> bytes:
    """The context serialised *without* the secret key: what the server receives."""
    return ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=True, save_relin_keys=True)


class PolyMLP(nn.Module):
    """Linear -> x² -> Linear (CryptoNets' square activation, evaluable under CKKS); hidden=0: logistic regression."""

    def __init__(self, d_in: int = 64, hidden: int = 16, num_classes: int = 10):
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(d_in, hidden) if hidden else None
        self.fc2 = nn.Linear(hidden or d_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)                                   # (B, d_in)
        if self.fc1 is not None:
            h = self.fc1(h).pow(2)                         # (B, hidden)
        return self.fc2(h)                                 # (B, num_classes)

    @property
    def depth(self) -> int:
        """Ciphertext multiplications on the longest path: one per Linear, one per square."""
        return 3 if self.fc1 is not None else 1


def fit_plaintext(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300, lr: float = 1e-2,
                  seed: int = 0) -> nn.Module:
    """Full-batch Adam on cross-entropy: the plaintext model the server will evaluate encrypted."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def check_depth(model: PolyMLP, preset: str) -> None:
    """Refuse an unknown preset, or one whose modulus chain is shorter than the model's multiplicative depth."""
    if preset not in PRESETS:
        raise ConfigError(f"he preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    if preset_depth(preset) < model.depth:
        fits = [p for p in PRESETS if preset_depth(p) >= model.depth]
        raise ConfigError(f"he preset {preset!r} has multiplicative depth {preset_depth(preset)} but the model "
                          f"needs {model.depth}; choose {' or '.join(fits)}")


def augmented_weight(layer: nn.Linear) -> list[list[float]]:
    """[Wᵀ; b], (D+1, H): the bias folded into the matrix, applied to the input [x, 1]."""
    return torch.cat([layer.weight.detach().T, layer.bias.detach()[None]]).tolist()


def encrypted_forward(model: PolyMLP, enc_x1):
    """The server's computation on Enc([x, 1]) with no secret key: [x,1]·[W₁ᵀ; b₁], x², ·W₂ᵀ + b₂.

    The first bias is folded into the matrix: TenSEAL broadcasts a plain vector over *all* slots, so
    adding b₁ after a vector-matrix product would leave copies of b₁ in the unused slots, which the
    next product's rotations sum in (we measured logit errors of ~4 that way, 1e-3 with the fold).
    """
    first = model.fc1 if model.fc1 is not None else model.fc2
    h = enc_x1.mm(augmented_weight(first))
    if model.fc1 is None:
        return h
    h = h.square()
    return h.mm(model.fc2.weight.detach().T.tolist()) + model.fc2.bias.detach().tolist()


@dataclass
class EncryptedInference:
    """Predictions and logits of the plaintext and the encrypted model on the same rows, with costs."""
    plain_logits: torch.Tensor
    enc_logits: torch.Tensor
    ms_per_inference: float
    ciphertext_bytes: int

    @property
    def max_abs_error(self) -> float:
        return (self.plain_logits - self.enc_logits).abs().max().item()

    @property
    def same_predictions(self) -> float:
        return (self.plain_logits.argmax(-1) == self.enc_logits.argmax(-1)).float().mean().item()


def encrypted_inference(model: PolyMLP, x: torch.Tensor, preset: str = "depth3") -> EncryptedInference:
    """Client encrypts each row, server (public context only) evaluates, client decrypts (CKKS round trip)."""
    ts = require_extra("tenseal", "he")
    check_depth(model, preset)
    client = make_context(preset)
    server = ts.context_from(public_context(client))
    rows = x.flatten(1).double()                                               # (B, D)
    out, sizes, elapsed = [], 0, 0.0
    for row in rows:
        enc = ts.ckks_vector(client, row.tolist() + [1.0]).serialize()        # client -> server: Enc([x, 1])
        t0 = time.perf_counter()
        result = encrypted_forward(model, ts.ckks_vector_from(server, enc)).serialize()  # server -> client
        elapsed += time.perf_counter() - t0
        sizes += len(enc)
        out.append(ts.ckks_vector_from(client, result).decrypt())
    with torch.no_grad():
        plain = model(x.flatten(1)).double()                                   # (B, K)
    return EncryptedInference(plain, torch.tensor(out, dtype=torch.float64), 1000 * elapsed / len(rows),
                              sizes // len(rows))


def encrypted_sum(updates: list[torch.Tensor], preset: str = "depth2") -> torch.Tensor:
    """Σ_k x_k computed by a server that sees only CKKS ciphertexts (additions only: depth 0), (P,)."""
    ts = require_extra("tenseal", "he")
    client = make_context(preset)
    server = ts.context_from(public_context(client))
    slots = PRESETS[preset]["poly_modulus_degree"] // 2
    total = None
    for x in updates:
        enc = [ts.ckks_vector(client, c.tolist()).serialize() for c in x.double().split(slots)]   # client side
        cts = [ts.ckks_vector_from(server, e) for e in enc]                                       # server side
        total = cts if total is None else [a + b for a, b in zip(total, cts)]
    chunks = [torch.tensor(ts.ckks_vector_from(client, c.serialize()).decrypt(), dtype=torch.float64)
              for c in total]
    return torch.cat(chunks)


def encrypted_weighted_average(states: list[dict[str, torch.Tensor]], sizes: list[float], round_: int,
                               preset: str = "depth2") -> dict[str, torch.Tensor]:
    """FedAvg's weighted mean where the server sums encrypted n_k·w_k (an ``Aggregator`` for federated_train)."""
    from .secagg import flatten_state, unflatten_state
    total = encrypted_sum([flatten_state(s) * n for s, n in zip(states, sizes)], preset)   # (P,)
    return unflatten_state(total / sum(sizes), states[0])
