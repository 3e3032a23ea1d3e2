"""GAE(λ) against a plain per-episode loop (Schulman et al. 2016, eq. 16); λ=1 and λ=0 limits."""
import torch

from frontierkit.rl.returns import discounted_returns, gae


def gae_plain_loop(rewards, values, dones, last_value, gamma, lam):
    """Textbook definition per env: Â_t = Σ_l (γλ)^l δ_{t+l}, truncated at episode ends."""
    T, N = len(rewards), len(rewards[0])
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                next_v = last_value[n] if k == T - 1 else values[k + 1][n]
                nonterminal = 0.0 if dones[k][n] else 1.0
                delta = rewards[k][n] + gamma * next_v * nonterminal - values[k][n]
                total += discount * delta
                if dones[k][n]:
                    break
                discount *= gamma * lam
            adv[t][n] = total
    return adv


def test_gae_matches_plain_loop():
    g = torch.Generator().manual_seed(0)
    T, N = 17, 3
    rewards, values = torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    dones = torch.rand(T, N, generator=g) < 0.2
    last = torch.randn(N, generator=g)
    adv, ret = gae(rewards, values, dones, last, gamma=0.97, lam=0.9)
    expected = torch.tensor(gae_plain_loop(rewards.tolist(), values.tolist(), dones.tolist(), last.tolist(), 0.97, 0.9))
    torch.testing.assert_close(adv, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ret, expected + values)


def test_gae_lambda_one_is_monte_carlo_minus_value_and_zero_is_td():
    g = torch.Generator().manual_seed(1)
    T, N = 10, 2
    rewards, values = torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    dones = torch.zeros(T, N, dtype=torch.bool)
    dones[-1] = True  # episodes end at T, so the bootstrap value is unused
    adv1, _ = gae(rewards, values, dones, torch.zeros(N), gamma=0.9, lam=1.0)
    torch.testing.assert_close(adv1, discounted_returns(rewards, dones, 0.9) - values)
    adv0, _ = gae(rewards, values, dones, torch.zeros(N), gamma=0.9, lam=0.0)
    next_v = torch.cat([values[1:], torch.zeros(1, N)])
    torch.testing.assert_close(adv0, rewards + 0.9 * next_v * (~dones) - values)


def test_discounted_returns_hand_computed():
    r = torch.tensor([[1.0], [2.0], [3.0]])
    d = torch.tensor([[False], [True], [False]])
    torch.testing.assert_close(discounted_returns(r, d, 0.5), torch.tensor([[2.0], [2.0], [3.0]]))
