"""Rollout and replay buffers, the batched critic ensemble and running normalisation."""
import numpy as np
import pytest
import torch

from frontierkit.rl.buffers import ReplayBuffer, RolloutBuffer
from frontierkit.rl.nets import ActorCritic, EnsembleQ, GaussianPolicy, RunningNorm, TanhGaussianActor


def test_rollout_minibatches_cover_every_sample_once():
    buf = RolloutBuffer(n_steps=5, n_envs=3, obs_dim=2, act_shape=())
    for t in range(5):
        buf.add(t, torch.full((3, 2), float(t)), torch.arange(3).float(), torch.zeros(3), torch.zeros(3),
                torch.zeros(3), torch.zeros(3))
    buf.advantages = torch.arange(15.0).view(5, 3)
    seen = torch.cat([mb["advantages"] for mb in buf.minibatches(4, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(15))
    sizes = [len(mb["obs"]) for mb in buf.minibatches(4, torch.Generator().manual_seed(0))]
    assert sizes == [4, 4, 4, 3]


def test_rollout_minibatch_rows_stay_aligned():
    buf = RolloutBuffer(n_steps=4, n_envs=2, obs_dim=1, act_shape=(1,))
    for t in range(4):
        val = torch.tensor([10.0 * t, 10.0 * t + 1])
        buf.add(t, val[:, None], val[:, None], val, val, torch.zeros(2), val)
    buf.advantages, buf.returns = buf.values.clone(), buf.values.clone()
    for mb in buf.minibatches(3, torch.Generator().manual_seed(1)):
        for k in ("actions", "log_probs", "advantages", "returns"):
            torch.testing.assert_close(mb[k].reshape(-1), mb["obs"].reshape(-1))


def test_replay_buffer_wraps_and_keeps_insertion_order():
    buf = ReplayBuffer(capacity=3, obs_dim=1, act_dim=1)
    for i in range(5):
        buf.add(np.array([i]), np.array([i]), float(i), np.array([i + 1]), terminal=i == 4, timeout=False)
    assert len(buf) == 3
    arrays = buf.arrays()
    assert arrays["rewards"].tolist() == [2.0, 3.0, 4.0]
    assert arrays["terminals"].tolist() == [False, False, True]
    batch = buf.sample(64, torch.Generator().manual_seed(0))
    assert batch["observations"].shape == (64, 1)
    assert set(batch["rewards"].tolist()) <= {2.0, 3.0, 4.0}
    torch.testing.assert_close(batch["next_observations"], batch["observations"] + 1)


def test_replay_from_arrays_round_trip():
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(7, 3)).astype(np.float32), "actions": rng.normal(size=(7, 2)),
            "rewards": rng.normal(size=7), "next_observations": rng.normal(size=(7, 3)),
            "terminals": rng.random(7) < 0.5, "timeouts": np.zeros(7, bool)}
    out = ReplayBuffer.from_arrays(data).arrays()
    for k, v in data.items():
        np.testing.assert_allclose(out[k], v, rtol=1e-6)


def test_ensemble_q_equals_independent_mlps():
    torch.manual_seed(0)
    q = EnsembleQ(obs_dim=3, act_dim=2, hidden=(8, 8), ensemble=2)
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    out = q(obs, act)
    assert out.shape == (2, 5)
    x = torch.cat([obs, act], -1)
    layers = [m for m in q.net if hasattr(m, "weight")]
    for e in range(2):
        h = x
        for i, lin in enumerate(layers):
            h = h @ lin.weight[e] + lin.bias[e, 0]
            if i < len(layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(out[e], h.squeeze(-1))


def test_running_norm_matches_numpy_statistics():
    norm = RunningNorm(2)
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (5, 17, 40)]
    for c in chunks:
        norm.update(torch.tensor(c))
    allx = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-3)


def test_tanh_actor_respects_action_bounds_and_log_prob_shape():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, (16,), torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0]))
    a, lp = actor.sample(torch.randn(100, 3) * 10)
    assert a.shape == (100, 2) and lp.shape == (100,)
    assert (a[:, 0].abs() <= 2.0).all() and (a[:, 1] >= 0).all() and (a[:, 1] <= 1).all()
    pol = GaussianPolicy(3, 2, (16,), torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0]))
    a = pol.act(torch.randn(100, 3), deterministic=False)
    assert (a[:, 1] >= 0).all() and (a[:, 1] <= 1).all()


@pytest.mark.parametrize("discrete", [True, False])
def test_actor_critic_log_prob_matches_distribution(discrete):
    torch.manual_seed(0)
    ac = ActorCritic(4, 3, discrete, (16,))
    obs = torch.randn(6, 4)
    d = ac.dist(obs)
    a = d.sample()
    lp, ent = ac.log_prob_entropy(obs, a)
    expected = d.log_prob(a) if discrete else d.log_prob(a).sum(-1)
    torch.testing.assert_close(lp, expected)
    assert ent.shape == (6,)
