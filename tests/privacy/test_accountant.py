"""RDP accountant for the sampled Gaussian mechanism vs Opacus' RDPAccountant (the oracle)."""
import itertools
import math

import pytest

from frontierkit.errors import ConfigError
from frontierkit.privacy import noise_multiplier_for, rdp_epsilon
from frontierkit.privacy.accountant import log_a_frac, log_a_int, max_steps_within, sgm_rdp

GRID = list(itertools.product([0.7, 1.1, 3.0], [0.004, 0.05, 1.0], [1, 300, 4000], [1e-5, 1e-3]))


def _opacus_epsilon(sigma, q, steps, delta):
    from opacus.accountants import RDPAccountant
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    return acc.get_epsilon(delta)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_rdp_epsilon_matches_opacus_rdp_accountant():
    """Oracle: opacus.accountants.RDPAccountant.get_epsilon; tolerance 1e-6 relative, over 54 (σ, q, steps, δ)."""
    for sigma, q, steps, delta in GRID:
        ours, theirs = rdp_epsilon(sigma, q, steps, delta), _opacus_epsilon(sigma, q, steps, delta)
        assert abs(ours - theirs) <= 1e-6 * max(1.0, theirs), (sigma, q, steps, delta, ours, theirs)


def test_integer_and_fractional_orders_agree_with_opacus_rdp():
    """Oracle: opacus.accountants.analysis.rdp._compute_rdp per order (integer: binomial sum, fractional:
    erfc series of Mironov-Talwar-Zhang 2019 Sec. 3.3); tolerance 1e-9 relative."""
    from opacus.accountants.analysis.rdp import _compute_rdp
    for q, sigma, alpha in itertools.product([0.01, 0.2], [0.8, 2.0], [1.5, 2, 3.7, 8, 20.5, 32]):
        ours, theirs = sgm_rdp(q, sigma, alpha), _compute_rdp(q, sigma, alpha)
        assert abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)), (q, sigma, alpha)


def test_fractional_series_at_an_integer_order_equals_the_binomial_sum():
    """Invariant: MTZ 2019's fractional-order series evaluated at an integer α equals the Sec. 3.2 sum (1e-9)."""
    for q, sigma, alpha in [(0.01, 1.0, 4), (0.1, 2.0, 10), (0.3, 0.9, 3)]:
        assert math.isclose(log_a_frac(q, sigma, float(alpha)), log_a_int(q, sigma, alpha), rel_tol=1e-9)


def test_full_batch_is_the_gaussian_mechanism_and_more_steps_cost_more():
    """q = 1: ε_RDP(α) = α/(2σ²) exactly (Mironov 2017, Prop. 7); ε grows with steps and falls with σ."""
    assert sgm_rdp(1.0, 2.0, 5.0) == 5.0 / 8.0
    assert rdp_epsilon(1.0, 0.01, 100, 1e-5) < rdp_epsilon(1.0, 0.01, 1000, 1e-5)
    assert rdp_epsilon(2.0, 0.01, 1000, 1e-5) < rdp_epsilon(1.0, 0.01, 1000, 1e-5)
    assert rdp_epsilon(1.0, 0.0, 1000, 1e-5) == 0.0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_noise_multiplier_for_inverts_rdp_epsilon_and_matches_opacus():
    """ε(σ*) = target to 1e-5 (we bisect σ to 1e-6); oracle opacus.accountants.utils.get_noise_multiplier
    (its own tolerance is epsilon_tolerance=0.01, so σ agrees within 1%)."""
    from opacus.accountants.utils import get_noise_multiplier
    for eps, q, steps in [(1.0, 0.05, 300), (3.0, 0.01, 2000), (8.0, 0.1, 100)]:
        sigma = noise_multiplier_for(eps, 1e-5, q, steps)
        assert abs(rdp_epsilon(sigma, q, steps, 1e-5) - eps) < 1e-5 * eps
        assert rdp_epsilon(sigma * 0.999, q, steps, 1e-5) > eps
        theirs = get_noise_multiplier(target_epsilon=eps, target_delta=1e-5, sample_rate=q, steps=steps,
                                      accountant="rdp")
        assert abs(sigma - theirs) < 0.01 * theirs, (eps, sigma, theirs)


def test_max_steps_within_is_the_last_step_inside_the_budget():
    """The budget stop: ε(n) <= budget < ε(n + 1)."""
    n = max_steps_within(2.0, 1.0, 0.05, 1e-5, 10_000)
    assert rdp_epsilon(1.0, 0.05, n, 1e-5) <= 2.0 < rdp_epsilon(1.0, 0.05, n + 1, 1e-5)


def test_bad_accountant_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="sample_rate"):
        rdp_epsilon(1.0, 1.5, 10, 1e-5)
    with pytest.raises(ConfigError, match="delta"):
        noise_multiplier_for(1.0, 0.0, 0.01, 10)
