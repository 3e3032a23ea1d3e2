"""Simulators of the science area: Burgers (pseudo-spectral ETDRK4), Darcy (finite differences), caching."""
from __future__ import annotations

import numpy as np
import pytest

from frontierkit.science import data


def test_burgers_small_amplitude_decays_like_the_heat_equation():
    """For a tiny u0 the nonlinearity vanishes: each Fourier mode decays by exp(-nu (2 pi k)^2 t) (rel. 1e-5)."""
    u0 = 1e-6 * data.grf_burgers(3, 128, np.random.default_rng(0))
    u1 = data.solve_burgers(u0, nu=0.01, t_end=0.5, dt=5e-3)
    k = 2 * np.pi * np.fft.rfftfreq(128, d=1 / 128)
    expected = np.fft.irfft(np.fft.rfft(u0) * np.exp(-0.01 * k ** 2 * 0.5), n=128)
    assert np.abs(u1 - expected).max() < 1e-5 * np.abs(expected).max()  # the nonlinearity is O(1e-6) relative


def test_burgers_conserves_mass_and_converges_in_dt():
    """The mean of u is conserved (conservative form) and halving dt changes u(1) by < 1e-6."""
    u0 = data.grf_burgers(4, 256, np.random.default_rng(1)) + 0.3
    a, b = data.solve_burgers(u0, 0.01, dt=4e-3), data.solve_burgers(u0, 0.01, dt=2e-3)
    np.testing.assert_allclose(a.mean(1), u0.mean(1), atol=1e-10)
    assert np.abs(a - b).max() < 1e-6


def test_darcy_constant_coefficient_matches_the_poisson_series():
    """a = 1: -Laplace u = 1 on the unit square; the centre value is 0.0736713... (Fourier series), FD to 1e-3 rel."""
    u = data.solve_darcy(np.ones((85, 85)))
    assert abs(u[42, 42] - 0.07367135) / 0.07367135 < 1e-3
    u3 = data.solve_darcy(3 * np.ones((85, 85)))
    np.testing.assert_allclose(u3, u / 3, rtol=1e-10, atol=1e-14)


def test_darcy_field_is_the_same_function_at_every_resolution():
    """The GRF is a cosine series, so the 169 grid contains the 85 grid's coefficient exactly."""
    xi = data.grf_darcy(2, np.random.default_rng(0))
    np.testing.assert_array_equal(data.darcy_coefficient(xi, 169)[:, ::2, ::2], data.darcy_coefficient(xi, 85))


def test_generators_are_cached_and_deterministic(tmp_path, monkeypatch):
    """Same seed -> identical arrays; the second call reads the .npz cache."""
    monkeypatch.setenv("FRONTIERKIT_CACHE", str(tmp_path))
    a = data.burgers(3, s_solve=64, seed=5)
    files = list((tmp_path / "science").glob("burgers-*.npz"))
    assert len(files) == 1
    b = data.burgers(3, s_solve=64, seed=5)
    np.testing.assert_array_equal(a["u"], b["u"])
    c = data.burgers(3, s_solve=64, seed=6)
    assert not np.allclose(a["a"], c["a"])


def test_fno_data_refuses_bad_resolutions():
    from frontierkit.config import ConfigError
    from frontierkit.science.train import FNODataConfig
    with pytest.raises(ConfigError, match="data.s"):
        FNODataConfig(problem="darcy", s=100)
