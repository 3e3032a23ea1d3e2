"""Federated learning: partitions, FedAvg's weighted mean, FedProx's proximal term, pairwise-mask secure
aggregation (the server's sum equals the plain sum) and a short FedAvg run that learns."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.privacy.federated import (FLConfig, dirichlet_split, federated_train, iid_split, label_split,
                                           local_update, proximal_term, weighted_average)
from frontierkit.privacy.secagg import mask_update, secure_sum, secure_weighted_average


def _labels(n=600):
    return torch.arange(n) % 10


def _is_partition(parts, n):
    flat = torch.cat(parts)
    return len(flat) == n and torch.equal(flat.sort().values, torch.arange(n))


def test_partitions_cover_every_example_once_and_skew_with_alpha():
    """IID, Dirichlet(α) and k-labels splits are partitions; Dirichlet(0.1) is more label-skewed than (100);
    1 label per client gives each client a single class."""
    y = _labels()
    for parts in (iid_split(y, 10), dirichlet_split(y, 10, 0.5), label_split(y, 10, 2)):
        assert _is_partition(parts, len(y))

    def skew(parts):   # mean share of a client's most frequent label
        return sum(torch.bincount(y[p], minlength=10).max().item() / len(p) for p in parts) / len(parts)

    assert skew(dirichlet_split(y, 10, 0.1)) > 0.5 > 0.2 > skew(dirichlet_split(y, 10, 100.0))
    assert all(len(y[p].unique()) == 1 for p in label_split(y, 10, 1))


def test_weighted_average_is_fedavg_server_step():
    """w = Σ_k n_k/n w_k (McMahan 2017, Alg. 1), hand-computed, exact to 1e-7."""
    states = [{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 6.0])}]
    torch.testing.assert_close(weighted_average(states, [1.0, 3.0])["w"], torch.tensor([2.5, 5.0]))


def test_proximal_term_is_half_mu_squared_distance():
    """Li et al. 2020 eq. 2: (μ/2)‖w - w_t‖² for w = w_t + 1 on 5 weights + 1 bias with μ = 0.4 -> 1.2."""
    lin = nn.Linear(5, 1)
    ref = {n: p.detach() - 1.0 for n, p in lin.named_parameters()}
    assert abs(proximal_term(lin, ref, 0.4).item() - 0.4 / 2 * 6) < 1e-6


def test_fedprox_local_update_descends_the_proximal_objective():
    """local_update(mu) adds μ(w - w_t) to each gradient; oracle: autograd of F_k(w) + proximal_term (Li 2020
    eq. 2) in the same SGD-with-momentum loop, 2 epochs, fp32, atol 1e-6."""
    torch.manual_seed(3)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    ref = copy.deepcopy(model)
    ours = local_update(model, x, y, epochs=2, batch_size=8, lr=0.1, mu=0.5, seed=4, momentum=0.9)
    anchor = {n: p.detach().clone() for n, p in ref.named_parameters()}
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(4)
    for _ in range(2):
        for idx in torch.randperm(40, generator=gen).split(8):
            opt.zero_grad()
            (F.cross_entropy(ref(x[idx]), y[idx]) + proximal_term(ref, anchor, 0.5)).backward()
            opt.step()
    for n, p in ref.state_dict().items():
        torch.testing.assert_close(ours[n], p, atol=1e-6, rtol=0)


def test_fedavg_drops_stragglers_and_fedprox_keeps_their_partial_work():
    """stragglers = 0.5 of 4 clients: each round 2 clients finish a uniform 1..E-1 epochs; FedAvg aggregates only
    the 2 that finished E (history's client count), FedProx all 4 (Li 2020, Sec. 5.1)."""
    from frontierkit.privacy.federated import straggler_epochs
    import numpy as np
    x, y = torch.randn(80, 6), torch.arange(80) % 4
    model = nn.Sequential(nn.Linear(6, 4))
    cfg = dict(clients=4, rounds=3, local_epochs=3, stragglers=0.5, partition="iid", batch_size=8)
    _, avg = federated_train(copy.deepcopy(model), x, y, FLConfig(algorithm="fedavg", **cfg))
    _, prox = federated_train(copy.deepcopy(model), x, y, FLConfig(algorithm="fedprox", **cfg))
    assert [h["clients"] for h in avg] == [2, 2, 2] and [h["clients"] for h in prox] == [4, 4, 4]
    e = straggler_epochs(np.random.default_rng(0), FLConfig(**cfg), [0, 1, 2, 3])
    assert sorted(e.values())[2:] == [3, 3] and all(1 <= v <= 2 for v in sorted(e.values())[:2])


def test_secure_sum_equals_plain_sum_while_each_masked_update_hides_its_value():
    """Bonawitz 2017 pairwise masks cancel: Σ masked = Σ plain to 1e-6; each masked vector is far from its
    plaintext (mask norm >> update norm)."""
    torch.manual_seed(0)
    xs = {u: torch.randn(50) for u in range(5)}
    clients = list(xs)
    masked = {u: mask_update(xs[u], u, clients, round_seed=7) for u in clients}
    torch.testing.assert_close(secure_sum(masked, clients, 7).float(), sum(xs.values()), atol=1e-6, rtol=0)
    for u in clients:
        assert (masked[u].float() - xs[u]).norm() > 100 * xs[u].norm()


def test_secure_sum_recovers_the_survivors_sum_when_a_client_drops():
    """Dropout handling (Bonawitz 2017, round 4): client 2 masks then drops; the server removes its pair masks
    with the survivors' revealed seeds and gets the survivors' plain sum to 1e-6."""
    torch.manual_seed(1)
    xs = {u: torch.randn(20) for u in range(4)}
    clients = list(xs)
    masked = {u: mask_update(xs[u], u, clients, round_seed=3) for u in clients if u != 2}
    expected = sum(xs[u] for u in clients if u != 2)
    torch.testing.assert_close(secure_sum(masked, clients, 3).float(), expected, atol=1e-6, rtol=0)


def test_secure_weighted_average_equals_plain_fedavg():
    """The masked aggregation gives FedAvg's weighted mean to 1e-6."""
    torch.manual_seed(2)
    states = [{"a": torch.randn(3, 4), "b": torch.randn(4)} for _ in range(3)]
    ours, plain = secure_weighted_average(states, [10.0, 20.0, 5.0], 0), weighted_average(states, [10.0, 20.0, 5.0])
    for n in plain:
        torch.testing.assert_close(ours[n], plain[n], atol=1e-6, rtol=0)


@pytest.mark.learned
def test_fedavg_on_dirichlet_digits_learns_and_secure_aggregation_changes_nothing():
    """FedAvg, 10 clients, Dirichlet(0.5), 8 rounds on digits with an MLP: test accuracy > 0.5 (chance 0.1;
    measured 0.63 under default and avx2 kernels); the same run with secure aggregation ends at the same
    weights (1e-5)."""
    from frontierkit.vision import VisionDataConfig, accuracy, build_model, load_data
    torch.set_num_threads(1)
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    cfg = FLConfig(rounds=8, local_epochs=1)
    torch.manual_seed(0)
    plain, hist = federated_train(build_model("mlp", width=16), x, y, cfg, evaluate=lambda m: accuracy(m, xt, yt))
    torch.manual_seed(0)
    secure, _ = federated_train(build_model("mlp", width=16), x, y, cfg, aggregate=secure_weighted_average)
    assert hist[-1]["test_acc"] > 0.5, hist
    for (n, p), q in zip(plain.state_dict().items(), secure.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=0)
