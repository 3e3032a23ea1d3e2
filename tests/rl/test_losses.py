"""Each loss against values computed by hand (PPO eq. 7/9, SAC eq. 5/7/18/21, CQL eq. 4, IQL eq. 5/7)."""
import math

import pytest
import torch

from frontierkit.rl.losses import (awr_policy_loss, cql_lagrange_losses, cql_penalty, expectile_loss,
                                   explained_variance, ppo_clip_loss, sac_actor_loss, sac_critic_loss,
                                   sac_temperature_loss, soft_q_target, tanh_gaussian_log_prob, value_loss)


def test_ppo_clip_loss_hand_computed():
    # ratios 1.5, 0.5, 1.0 with advantages +1, +1, -2 and ε = 0.2:
    # min(1.5, 1.2)=1.2 ; min(0.5, 0.8)=0.5 ; min(-2, -2)=-2  -> loss = -(1.2+0.5-2)/3 = 0.1
    old = torch.zeros(3)
    new = torch.log(torch.tensor([1.5, 0.5, 1.0]))
    loss, diag = ppo_clip_loss(new, old, torch.tensor([1.0, 1.0, -2.0]), 0.2)
    assert loss.item() == pytest.approx(0.1, abs=1e-6)
    assert diag["clipfrac"].item() == pytest.approx(2 / 3)
    expected_kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5)) + 0.0) / 3
    assert diag["approx_kl"].item() == pytest.approx(expected_kl, abs=1e-6)


def test_ppo_clip_gradient_vanishes_outside_trust_region():
    new = torch.log(torch.tensor([1.5])).requires_grad_()
    loss, _ = ppo_clip_loss(new, torch.zeros(1), torch.tensor([1.0]), 0.2)
    loss.backward()
    assert new.grad.item() == 0.0  # ratio above 1+ε with A>0: clipped, no incentive to grow


def test_value_loss_plain_and_clipped_hand_computed():
    v, ret, old = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5])
    assert value_loss(v, ret).item() == pytest.approx(0.5 * (4 + 1) / 2)
    # clip 0.2: v_clip = [1.2, 0.3]; errors max((4,1.44), (1,0.49)) = (4, 1) -> 0.5 * 2.5
    assert value_loss(v, ret, old, clip=0.2).item() == pytest.approx(1.25)
    v2 = torch.tensor([0.9, 0.4])  # v_clip = [0.9, 0.4]; errors (0.81, 0.36) -> 0.5 * mean
    assert value_loss(v2, ret, torch.tensor([1.0, 0.3]), clip=0.2).item() == pytest.approx(0.5 * (0.81 + 0.36) / 2)


def test_tanh_log_prob_matches_hand_computed_and_torch_transform():
    mean, log_std, u = torch.tensor([[0.3, -0.2]]), torch.tensor([[-0.5, 0.1]]), torch.tensor([[0.7, -1.4]])
    std = log_std.exp()
    log_mu = (-((u - mean) ** 2) / (2 * std ** 2) - log_std - 0.5 * math.log(2 * math.pi)).sum()
    hand = log_mu - torch.log(1 - torch.tanh(u) ** 2).sum()
    got = tanh_gaussian_log_prob(mean, log_std, u)
    assert got.item() == pytest.approx(hand.item(), abs=1e-5)
    d = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, std),
                                                    [torch.distributions.TanhTransform()])
    assert got.item() == pytest.approx(d.log_prob(torch.tanh(u)).sum().item(), abs=1e-5)
    # scaling a = 2 tanh(u) subtracts |A| log 2
    assert tanh_gaussian_log_prob(mean, log_std, u, 2.0).item() == pytest.approx(hand.item() - 2 * math.log(2), abs=1e-5)


def test_tanh_log_prob_is_finite_at_saturation():
    u = torch.tensor([[30.0, -30.0]])
    assert torch.isfinite(tanh_gaussian_log_prob(torch.zeros(1, 2), torch.zeros(1, 2), u)).all()


def test_sac_target_actor_critic_temperature_hand_computed():
    y = soft_q_target(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([2.0, 2.0]),
                      torch.tensor([-1.0, -1.0]), alpha=0.5, gamma=0.9)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.5, 1.0]))
    q = torch.tensor([[1.0, 2.0], [3.0, 2.0]])  # (E=2, B=2)
    assert sac_critic_loss(q, torch.tensor([2.0, 2.0])).item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert sac_actor_loss(torch.tensor([-1.0, 1.0]), torch.tensor([2.0, 4.0]), 0.5).item() == pytest.approx(-3.0)
    log_alpha = torch.tensor(0.0, requires_grad=True)
    loss = sac_temperature_loss(log_alpha, torch.tensor([-0.5, -0.5]), target_entropy=-1.0)
    assert loss.item() == pytest.approx(-(1.0 * (-1.5)))
    loss.backward()  # entropy 0.5 > target -1: α should shrink, i.e. gradient on log α positive
    assert log_alpha.grad.item() > 0


def test_cql_penalty_hand_computed():
    # one critic, one state, N = 1 of each sample kind, |A| = 1 (uniform density 0.5)
    q_data = torch.tensor([[1.0]])
    q_rand, q_pi, q_next = torch.tensor([[[0.5]]]), torch.tensor([[[2.0]]]), torch.tensor([[[1.5]]])
    lp_pi, lp_next = torch.tensor([[-0.3]]), torch.tensor([[0.2]])
    lse = math.log(math.exp(0.5 - math.log(0.5)) + math.exp(2.0 + 0.3) + math.exp(1.5 - 0.2))
    got = cql_penalty(q_data, q_rand, q_pi, lp_pi, q_next, lp_next, action_dim=1)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(lse - 1.0, abs=1e-6)
    # temperature T: T * logsumexp(x / T)
    lse2 = 2.0 * math.log(sum(math.exp(x / 2.0) for x in (0.5 - math.log(0.5), 2.3, 1.3)))
    assert cql_penalty(q_data, q_rand, q_pi, lp_pi, q_next, lp_next, 1, temperature=2.0).item() == \
        pytest.approx(lse2 - 1.0, abs=1e-6)


def test_cql_penalty_grows_when_q_overestimates_unseen_actions():
    q_data = torch.zeros(2, 4)
    low = cql_penalty(q_data, torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.zeros(4, 3), torch.zeros(2, 4, 3),
                      torch.zeros(4, 3), action_dim=2)
    high = cql_penalty(q_data, torch.full((2, 4, 3), 5.0), torch.zeros(2, 4, 3), torch.zeros(4, 3),
                       torch.zeros(2, 4, 3), torch.zeros(4, 3), action_dim=2)
    assert (high > low).all()


def test_cql_lagrange_raises_alpha_when_penalty_exceeds_gap():
    log_ap = torch.tensor(0.0, requires_grad=True)
    critic_term, alpha_loss = cql_lagrange_losses(torch.tensor([12.0]), log_ap, target_gap=10.0)
    assert critic_term.item() == pytest.approx(2.0)
    alpha_loss.backward()
    assert log_ap.grad.item() < 0  # gradient descent increases α' while penalty > τ


def test_expectile_loss_hand_computed():
    diff = torch.tensor([2.0, -1.0])
    assert expectile_loss(diff, 0.7).item() == pytest.approx((0.7 * 4 + 0.3 * 1) / 2)
    assert expectile_loss(diff, 0.5).item() == pytest.approx(0.5 * (4 + 1) / 2)  # τ = ½: half the MSE


def test_expectile_minimiser_is_upper_expectile():
    # minimising over v the expectile loss of (x - v) gives the τ-expectile, above the mean for τ > ½
    x = torch.tensor([0.0, 1.0, 2.0, 10.0])
    v = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([v], lr=0.05)
    for _ in range(2000):
        opt.zero_grad()
        expectile_loss(x - v, 0.9).backward()
        opt.step()
    # τ-expectile solves τ Σ_{x>v}(x-v) = (1-τ) Σ_{x<v}(v-x)
    e = v.item()
    assert 0.9 * sum(max(xi - e, 0) for xi in x.tolist()) == pytest.approx(0.1 * sum(max(e - xi, 0) for xi in x.tolist()), abs=1e-2)
    assert e > x.mean().item()


def test_awr_policy_loss_hand_computed_with_weight_cap():
    lp, adv = torch.tensor([-1.0, -2.0]), torch.tensor([0.0, 10.0])
    # weights exp(3·0)=1 and exp(30) capped at 100
    assert awr_policy_loss(lp, adv, beta=3.0, max_weight=100.0).item() == pytest.approx(-(1 * -1 + 100 * -2) / 2)


def test_explained_variance():
    y = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(y, y) == pytest.approx(1.0)
    assert explained_variance(torch.full((3,), 2.0), y) == pytest.approx(0.0)
