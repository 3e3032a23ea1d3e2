"""Rényi-DP accountant for the sampled Gaussian mechanism (SGM), the mechanism of DP-SGD.

- Mironov (2017), "Rényi Differential Privacy": RDP composes additively over steps, and converts
  to (ε, δ)-DP.
- Mironov, Talwar, Zhang (2019), "Rényi Differential Privacy of the Sampled Gaussian Mechanism":
  A_α for integer orders (Sec. 3.2, a binomial sum) and fractional orders (Sec. 3.3, two series
  with erfc tails); ε_RDP(α) = log(A_α) / (α - 1).
- Balle, Barthe, Gaboardi, Hsu, Sato (2020), "Hypothesis Testing Interpretations and Renyi
  Differential Privacy", Thm. 21: the tighter RDP -> (ε, δ) conversion (the one Opacus uses).

All sums run in log space with signs tracked, so large orders and small q do not overflow.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

DEFAULT_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))
"""Rényi orders α searched for the best ε (the same grid as Opacus and TF-Privacy)."""


def _logsumexp_signed(terms: Sequence[tuple[float, float]]) -> float:
    """log(Σ sign_i · exp(log_i)) for a positive total; terms are (sign, log|term|)."""
    if not terms:
        return -math.inf
    m = max(log for _, log in terms)
    if m == -math.inf:
        return -math.inf
    total = math.fsum(sign * math.exp(log - m) for sign, log in terms)
    return m + math.log(total) if total > 0 else -math.inf


def _log_binom(n: float, k: int) -> tuple[float, float]:
    """(sign, log|C(n, k)|) of a generalised binomial coefficient (n real, k a natural number)."""
    from scipy import special                 # here, not at the top: every `frontier` start imports this module
    coef = special.binom(n, k)
    return (1.0 if coef >= 0 else -1.0), (math.log(abs(coef)) if coef != 0 else -math.inf)


def log_a_int(q: float, sigma: float, alpha: int) -> float:
    """log A_α = log Σ_k C(α,k) (1-q)^(α-k) q^k exp((k²-k)/(2σ²)), MTZ 2019 Sec. 3.2 (integer α)."""
    from scipy import special
    terms = [(1.0, special.gammaln(alpha + 1) - special.gammaln(k + 1) - special.gammaln(alpha - k + 1)
              + k * math.log(q) + (alpha - k) * math.log1p(-q) + (k * k - k) / (2 * sigma ** 2))
             for k in range(alpha + 1)]
    return _logsumexp_signed(terms)


def _log_erfc(x: float) -> float:
    """log erfc(x), accurate for large x (scipy's scaled erfcx avoids underflow)."""
    from scipy import special
    return math.log(special.erfcx(x)) - x * x if x > 0 else math.log(special.erfc(x))


def log_a_frac(q: float, sigma: float, alpha: float, tail: float = -30.0) -> float:
    """log A_α for fractional α, MTZ 2019 Sec. 3.3: A_α = A_0 + A_1, two series split at z_0 = σ² log(1/q - 1) + 1/2."""
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    terms: list[tuple[float, float]] = []
    i = 0
    while True:
        j = alpha - i
        sign, log_coef = _log_binom(alpha, i)
        log_s0 = (log_coef + i * math.log(q) + j * math.log1p(-q) + (i * i - i) / (2 * sigma ** 2)
                  + math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma)))   # A_0's i-th term
        log_s1 = (log_coef + j * math.log(q) + i * math.log1p(-q) + (j * j - j) / (2 * sigma ** 2)
                  + math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma)))   # A_1's i-th term
        terms += [(sign, log_s0), (sign, log_s1)]
        i += 1
        if max(log_s0, log_s1) < tail:
            return _logsumexp_signed(terms)


def sgm_rdp(q: float, sigma: float, alpha: float) -> float:
    """ε_RDP(α) of one step of the sampled Gaussian mechanism: log(A_α) / (α - 1) (MTZ 2019, Thm. 4/5)."""
    if q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    if q == 1.0:
        return alpha / (2 * sigma ** 2)                 # the plain Gaussian mechanism (Mironov 2017, Prop. 7)
    if math.isinf(alpha):
        return math.inf
    log_a = log_a_int(q, sigma, int(alpha)) if float(alpha).is_integer() else log_a_frac(q, sigma, alpha)
    return log_a / (alpha - 1)


def rdp_curve(sample_rate: float, noise_multiplier: float, steps: int,
              orders: Iterable[float] = DEFAULT_ORDERS) -> np.ndarray:
    """ε_RDP(α) after ``steps`` compositions, one value per order (Mironov 2017, Prop. 1: RDP adds up)."""
    return np.array([sgm_rdp(sample_rate, noise_multiplier, a) for a in orders]) * steps


def epsilon_from_rdp(rdp: np.ndarray, orders: Sequence[float], delta: float) -> tuple[float, float]:
    """(ε, best α): ε = min_α rdp(α) + log((α-1)/α) - (log δ + log α)/(α-1) (Balle et al. 2020, Thm. 21)."""
    a = np.asarray(orders, dtype=float)
    eps = rdp - (np.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)   # (n_orders,)
    eps = np.where(np.isnan(eps), np.inf, eps)
    best = int(np.argmin(eps))
    return max(float(eps[best]), 0.0), float(a[best])


def _check(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> None:
    from ..errors import ConfigError
    if noise_multiplier < 0:
        raise ConfigError(f"noise_multiplier={noise_multiplier} is invalid: must be >= 0")
    if not 0 <= sample_rate <= 1:
        raise ConfigError(f"sample_rate={sample_rate} is invalid: must be in [0, 1] (batch size / dataset size)")
    if steps < 0:
        raise ConfigError(f"steps={steps} is invalid: must be >= 0")
    if not 0 < delta < 1:
        raise ConfigError(f"delta={delta} is invalid: must be in (0, 1), typically below 1/N")


def rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                orders: Sequence[float] = DEFAULT_ORDERS) -> float:
    """ε(δ) of ``steps`` DP-SGD steps with Poisson sampling rate q and noise σ (Abadi 2016 + MTZ 2019)."""
    _check(noise_multiplier, sample_rate, steps, delta)
    if steps == 0 or sample_rate == 0:
        return 0.0
    return epsilon_from_rdp(rdp_curve(sample_rate, noise_multiplier, steps, orders), orders, delta)[0]


def noise_multiplier_for(epsilon: float, delta: float, sample_rate: float, steps: int,
                         orders: Sequence[float] = DEFAULT_ORDERS, rtol: float = 1e-6) -> float:
    """The smallest σ with rdp_epsilon(σ, q, steps, δ) <= ε, by bisection (ε falls monotonically in σ)."""
    from ..errors import ConfigError
    if not epsilon > 0:
        raise ConfigError(f"epsilon={epsilon} is invalid: must be > 0")
    _check(0.0, sample_rate, steps, delta)
    lo, hi = 0.0, 1.0
    while rdp_epsilon(hi, sample_rate, steps, delta, orders) > epsilon:
        lo, hi = hi, 2 * hi
        if hi > 1e6:
            raise ConfigError(f"epsilon={epsilon} is unreachable at delta={delta}, sample_rate={sample_rate}, "
                              f"steps={steps}: raise epsilon or delta, or take fewer steps")
    while hi - lo > rtol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rdp_epsilon(mid, sample_rate, steps, delta, orders) > epsilon else (lo, mid)
    return hi


def max_steps_within(epsilon: float, noise_multiplier: float, sample_rate: float, delta: float,
                     limit: int, orders: Sequence[float] = DEFAULT_ORDERS) -> int:
    """The most steps (<= limit) whose ε(δ) stays within the budget (RDP, hence ε, grows with steps)."""
    one_step = rdp_curve(sample_rate, noise_multiplier, 1, orders)          # (n_orders,)

    def eps(steps: int) -> float:
        return epsilon_from_rdp(one_step * steps, orders, delta)[0] if steps else 0.0

    if eps(limit) <= epsilon:
        return limit
    lo, hi = 0, limit                                   # eps(lo) <= budget < eps(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if eps(mid) <= epsilon else (lo, mid)
    return lo
