"""Short learning runs that must reach a return threshold, not merely run (seeded, single-threaded).

Random-policy references: CartPole-v1 ≈ 22, Pendulum-v1 ≈ -1200.

Float results differ in the last bits between CPUs (vector units, BLAS code paths) and RL amplifies
that: a run on another CPU is, in effect, a run with another seed. So each threshold below is set
under the worst value measured over seeds 0-4 and over torch's CPU kernels (ATEN_CPU_CAPABILITY=
default / avx2; native is avx2 on the measuring machine), with margin, never from one seed's curve.
The tests marked ``learned`` run under each kernel set with ``make test-cpus``.
"""
import numpy as np
import pytest
import torch

from frontierkit.rl import cql, iql, ppo, sac
from frontierkit.rl.common import EnvConfig, EvalConfig, evaluate_policy, load_policy
from frontierkit.rl.data import load_dataset, rollout_arrays, save_dataset, stochastic_act
from frontierkit.rl.offline import DataConfig

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.mark.learned
def test_ppo_cartpole_beats_90_within_20k_steps(tmp_path):
    """Final deterministic return (5 episodes) after 20k steps, measured for seeds 0-4 x {default, avx2}:
    seed 0: 496 / 290, seed 1: 466 / 500, seed 2: 500 / 500, seed 3: 129 / 131, seed 4: 179 / 473
    (another 2-core machine, seed 0: 185). Seed 3 is a slow learner whose every evaluation after 8k steps lies in
    114-197, so a threshold of 195 fails on plausible seeds; 90 sits 20% under that plateau's lowest value and
    is 4x the random policy's 22."""
    run = ppo.PPORunConfig(env=EnvConfig(id="CartPole-v1", seed=0), ppo=ppo.PPOConfig(total_steps=20_000),
                           eval=EvalConfig(every=0, episodes=5))
    result = ppo.train(run, out=tmp_path)
    assert result.final_return >= 90.0
    first = np.mean([r for _, r in result.train_returns[:20]])
    assert first < 60.0  # it started near random and learned
    policy, cfg = load_policy(tmp_path)  # the saved checkpoint reproduces the evaluation
    assert cfg["model"]["algo"] == "ppo"
    assert evaluate_policy(policy, "CartPole-v1", 5)[0] == pytest.approx(result.final_return)


@pytest.fixture(scope="module")
def pendulum_sac(tmp_path_factory):
    torch.set_num_threads(1)
    run = sac.SACRunConfig(env=EnvConfig(id="Pendulum-v1", seed=0),
                           sac=sac.SACConfig(total_steps=4000, hidden=(64, 64), batch_size=128),
                           eval=EvalConfig(every=0, episodes=5))
    return sac.train(run, out=tmp_path_factory.mktemp("sac"))


@pytest.mark.learned
def test_sac_pendulum_beats_minus_400_within_4k_steps(pendulum_sac):
    """Final return (5 episodes) after 4k steps, seed 0: -125.8 (default) / -126.1 (avx2); the evaluations at
    3k steps were -307 / -355, so -400 holds a full 1k steps early. Only seed 0 was measured (the 4k-step run is
    the file's slowest); the margin (~275) is far above the spread between the two kernel sets."""
    assert pendulum_sac.final_return >= -400.0  # random ≈ -1200
    assert pendulum_sac.extra["learner"].alpha < 0.5  # the temperature was tuned down from 1


@pytest.fixture(scope="module")
def expert_dataset(pendulum_sac, tmp_path_factory):
    arrays = rollout_arrays(stochastic_act(pendulum_sac.policy), "Pendulum-v1", 2000, seed=1)
    meta = {"env_id": "Pendulum-v1", "obs_dim": 3, "act_dim": 1, "low": [-2.0], "high": [2.0],
            "ref_random_return": -1200.0, "ref_expert_return": pendulum_sac.final_return, "kind": "expert"}
    return save_dataset(tmp_path_factory.mktemp("data") / "pendulum-expert.npz", arrays, meta)


@pytest.mark.learned
def test_iql_on_expert_pendulum_data_scores_above_50(expert_dataset):
    """D4RL-normalised score after 1000 steps on the SAC fixture's data, seed 0: 97.4 (default) / 97.6 (avx2);
    its curve is flat from 500 steps on (100.0 / 97.5 at 500), so 50 leaves ~47 points of margin (random = 0)."""
    hyper = iql.IQLConfig(steps=1000, hidden=(64, 64), actor_lr=1e-3, critic_lr=1e-3, value_lr=1e-3)
    run = iql.IQLRunConfig(data=DataConfig(path=str(expert_dataset)), iql=hyper, eval=EvalConfig(every=0, episodes=5))
    result = iql.train(run)
    assert result.history[-1]["normalized_score"] >= 50.0


@pytest.mark.learned
def test_cql_on_expert_pendulum_data_scores_above_50(expert_dataset):
    """Median D4RL-normalised score of the evaluations at 1500, 1750 and 2000 steps. The former 1000 steps
    (batch 256) ended mid-climb: 28.0 (default) / 82.3 (avx2) for seed 0, 31.5 on another machine. At 2000 steps
    (batch 128) the evaluations at 1500/1750/2000 were, data seed 0: 72/91/85 (default), 86/100/93 (avx2);
    data seed 1: 88/73/90 (default), 90/37/100 (avx2), so medians 85-93. A single evaluation can dip (37), hence
    the median; 50 sits 35 points under the lowest median and far above random (0)."""
    run = cql.CQLRunConfig(data=DataConfig(path=str(expert_dataset)),
                           cql=cql.CQLConfig(steps=2000, batch_size=128, hidden=(64, 64), actor_lr=1e-3,
                                             critic_lr=1e-3, n_action_samples=4),
                           eval=EvalConfig(every=250, episodes=5))
    result = cql.train(run)
    assert [row["step"] for row in result.history[-3:]] == [1500, 1750, 2000]
    assert np.median([row["normalized_score"] for row in result.history[-3:]]) >= 50.0
    assert result.extra["last_stats"]["cql_penalty"] > 0
    assert load_dataset(expert_dataset).metadata["kind"] == "expert"


def test_ppo_gaussian_checkpoint_carries_observation_statistics(tmp_path):
    run = ppo.PPORunConfig(env=EnvConfig(id="Pendulum-v1", seed=0),
                           ppo=ppo.PPOConfig(total_steps=1024, n_envs=2, n_steps=256, batch_size=128, n_epochs=2,
                                             norm_obs=True, norm_reward=True, gamma=0.99, gae_lambda=0.95),
                           eval=EvalConfig(every=0, episodes=2))
    result = ppo.train(run, out=tmp_path)
    agent = result.policy
    assert agent.obs_norm is not None and agent.obs_norm.count.item() == pytest.approx(1024, abs=1)
    policy, _ = load_policy(tmp_path)
    torch.testing.assert_close(policy.obs_norm.mean, agent.obs_norm.mean)
    assert evaluate_policy(policy, "Pendulum-v1", 2)[0] == pytest.approx(result.final_return)
