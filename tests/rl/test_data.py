"""Offline dataset format: round trip, normalised score, and clear errors for malformed files."""
import json

import numpy as np
import pytest

from frontierkit.errors import DataError
from frontierkit.rl.data import episode_returns, load_dataset, normalized_score, save_dataset

META = {"env_id": "Pendulum-v1", "obs_dim": 3, "act_dim": 1, "low": [-2.0], "high": [2.0],
        "ref_random_return": -1200.0, "ref_expert_return": -200.0, "kind": "expert", "source": "test", "seed": 0}


def arrays(n=6):
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(n, 3)), "actions": rng.uniform(-2, 2, size=(n, 1)),
            "rewards": np.arange(n, dtype=float), "next_observations": rng.normal(size=(n, 3)),
            "terminals": np.zeros(n, bool), "timeouts": np.array([False, False, True, False, False, True])}


def test_round_trip_and_metadata(tmp_path):
    path = save_dataset(tmp_path / "d.npz", arrays(), META)
    d = load_dataset(path)
    assert len(d) == 6 and d.env_id == "Pendulum-v1"
    assert d.metadata["n_episodes"] == 2 and d.metadata["format"] == "frontierkit-rl-dataset"
    assert d.metadata["behaviour_return"][0] == pytest.approx((0 + 1 + 2 + 3 + 4 + 5) / 2)
    assert d.arrays["terminals"].dtype == bool and d.arrays["observations"].dtype == np.float32
    assert episode_returns(d.arrays) == [3.0, 12.0]


def test_normalized_score_d4rl_definition():
    assert normalized_score(-200.0, -1200.0, -200.0) == pytest.approx(100.0)
    assert normalized_score(-1200.0, -1200.0, -200.0) == pytest.approx(0.0)
    assert normalized_score(-700.0, -1200.0, -200.0) == pytest.approx(50.0)


def _write(path, arrs, meta):
    np.savez(path, **arrs, metadata=np.array(json.dumps(meta)))
    return path


@pytest.mark.parametrize("break_it, message", [
    (lambda a, m: a.pop("rewards"), "lacks"),
    (lambda a, m: a.__setitem__("actions", np.zeros((6, 2))), "actions has shape"),
    (lambda a, m: a.__setitem__("observations", np.full((6, 3), np.nan)), "finite"),
    (lambda a, m: a.__setitem__("terminals", np.zeros(6)), "must be bool"),
    (lambda a, m: m.pop("ref_expert_return"), "metadata lacks"),
    (lambda a, m: m.__setitem__("ref_expert_return", -1200.0), "undefined"),
])
def test_malformed_dataset_errors_name_the_problem(tmp_path, break_it, message):
    a, m = arrays(), dict(META)
    break_it(a, m)
    with pytest.raises(DataError, match=message):
        load_dataset(_write(tmp_path / "bad.npz", a, m))


def test_not_a_dataset_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match="not a .npz"):
        load_dataset(tmp_path / "text.npz")
    np.savez(tmp_path / "nometa.npz", **arrays())
    with pytest.raises(DataError, match="metadata"):
        load_dataset(tmp_path / "nometa.npz")
