"""Attacks: parity with torchattacks and ART, and the invariants every attack keeps."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from frontierkit.errors import ConfigError
from frontierkit.robust.attacks import apgd, fgsm, input_gradient, pgd, project


def _fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(-1) != y


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_matches_torchattacks(cnn, test_digits, targeted):
    """Oracle: torchattacks.FGSM (3.5.1), same model and inputs; tolerance 1e-6 (max abs pixel difference)."""
    import torchattacks
    _, model = cnn
    x, y = test_digits
    goal = (y + 1) % 10 if targeted else y
    for eps in (0.05, 0.2):
        ref = torchattacks.FGSM(model, eps=eps)
        if targeted:
            ref.set_mode_targeted_by_function(lambda images, labels: (labels + 1) % 10)
        assert (fgsm(model, x, goal, eps, targeted=targeted) - ref(x, y)).abs().max() <= 1e-6


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_linf_matches_torchattacks_without_random_start(cnn, test_digits, targeted):
    """Oracle: torchattacks.PGD, random_start=False, 20 steps; tolerance 1e-6 (max abs pixel difference)."""
    import torchattacks
    _, model = cnn
    x, y = test_digits
    ref = torchattacks.PGD(model, eps=0.15, alpha=0.02, steps=20, random_start=False)
    if targeted:
        ref.set_mode_targeted_by_function(lambda images, labels: (labels + 3) % 10)
    ours = pgd(model, x, (y + 3) % 10 if targeted else y, 0.15, 0.02, 20, random_start=False, targeted=targeted)
    assert (ours - ref(x, y)).abs().max() <= 1e-6


def test_pgd_linf_random_start_matches_torchattacks_under_the_same_seed(cnn, test_digits):
    """Oracle: torchattacks.PGD with random start; both draw U(-eps, eps) from the global RNG seeded alike; 1e-6."""
    import torchattacks
    _, model = cnn
    x, y = test_digits
    torch.manual_seed(7)
    ours = pgd(model, x, y, 0.1, 0.02, 10)
    torch.manual_seed(7)
    ref = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=10)(x, y)
    assert (ours - ref).abs().max() <= 1e-6


def test_pgd_l2_matches_torchattacks(mlp, test_digits):
    """Oracle: torchattacks.PGDL2, random_start=False; tolerance 1e-6. torchattacks divides the gradient of the
    batch-mean loss by its norm + eps_for_division; we divide the gradient of the summed loss (batch-size
    independent) by its norm + 1e-20: with eps_for_division = 1e-20 / B both are the same function. On the MLP:
    on the CNN 2 of 96 samples drift apart (3e-3) after 20 steps, as 1-ulp differences between the mean- and
    sum-loss gradients flip ties in max-pool windows of the zero background and so the gradient's route."""
    import torchattacks
    model = mlp
    x, y = test_digits
    ref = torchattacks.PGDL2(model, eps=1.0, alpha=0.15, steps=20, random_start=False,
                             eps_for_division=1e-20 / len(x))(x, y)
    assert (pgd(model, x, y, 1.0, 0.15, 20, norm="l2", random_start=False) - ref).abs().max() <= 1e-6


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
def test_apgd_matches_torchattacks(cnn, test_digits, norm, eps):
    """Oracle: torchattacks.APGD (a copy of AutoAttack's APGD-CE), same seed, 2 restarts, 40 steps: the same
    samples are fooled and their adversarial examples agree to 1e-6 (for unfooled samples torchattacks
    returns the clean input, we the highest-loss point)."""
    import torchattacks
    _, model = cnn
    x, y = test_digits
    ours = apgd(model, x, y, eps, steps=40, norm=norm, restarts=2, seed=3)
    ref = torchattacks.APGD(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=40, n_restarts=2,
                            seed=3)(x, y)
    fooled = _fooled(model, ref, y)
    assert 0 < fooled.sum() < len(y)
    assert torch.equal(_fooled(model, ours, y), fooled)
    assert (ours[fooled] - ref[fooled]).abs().max() <= 1e-6


def test_fgsm_and_pgd_match_art(cnn, test_digits):
    """Oracle: ART 1.x FastGradientMethod and ProjectedGradientDescent (num_random_init=0) on a PyTorchClassifier
    with clip_values (0, 1); tolerance 1e-6."""
    pytest.importorskip("art")
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier
    _, model = cnn
    x, y = test_digits
    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="cpu")
    ref = FastGradientMethod(clf, eps=0.1).generate(x.numpy(), y.numpy())
    assert (fgsm(model, x, y, 0.1) - torch.from_numpy(ref)).abs().max() <= 1e-6
    ref = ProjectedGradientDescent(clf, eps=0.15, eps_step=0.02, max_iter=20, num_random_init=0,
                                   batch_size=len(x), verbose=False).generate(x.numpy(), y.numpy())
    assert (pgd(model, x, y, 0.15, 0.02, 20, random_start=False) - torch.from_numpy(ref)).abs().max() <= 1e-6


class _Normalised(nn.Module):
    """A model that normalises inside (pixels in [-1, 2] mapped to [0, 1])."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model((x + 1) / 3)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 1.5)])
def test_attacks_stay_in_the_ball_and_the_valid_range(cnn, test_digits, norm, eps):
    """Invariant: every output lies within eps of x (in norm) and in [clip_min, clip_max], also for a model
    that normalises inside and a range other than [0, 1]."""
    _, model = cnn
    x, y = test_digits
    m, xr = _Normalised(model), x * 3 - 1                                 # inputs in [-1, 2]
    outs = [pgd(m, xr, y, eps, steps=10, norm=norm, restarts=2, clip_min=-1, clip_max=2),
            apgd(m, xr, y, eps, steps=10, norm=norm, clip_min=-1, clip_max=2)]
    if norm == "linf":
        outs.append(fgsm(m, xr, y, eps, clip_min=-1, clip_max=2))
    for adv in outs:
        d = (adv - xr).flatten(1)
        size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
        assert size.max() <= eps + 1e-5 and adv.min() >= -1 and adv.max() <= 2
    assert _fooled(m, outs[0], y).float().mean() > 0.3               # the attack still works through the normaliser


def test_restarts_keep_each_samples_worst_case(cnn, test_digits):
    """Invariant: with the same generator the first restart is the single run, so every sample it fools stays
    fooled, and restarts only add fooled samples."""
    _, model = cnn
    x, y = test_digits
    one = pgd(model, x, y, 0.08, steps=5, generator=torch.Generator().manual_seed(1))
    many = pgd(model, x, y, 0.08, steps=5, restarts=4, generator=torch.Generator().manual_seed(1))
    f1, f4 = _fooled(model, one, y), _fooled(model, many, y)
    assert (f1 <= f4).all() and f4.sum() >= f1.sum() > 0


def test_early_stop_is_never_weaker_than_the_final_iterate(cnn, test_digits):
    """Invariant: from the same start, a sample fooled by the final iterate was fooled at some iterate, where
    early stop freezes it: early-stop accuracy <= final-iterate accuracy (and it stops fooled samples early)."""
    _, model = cnn
    x, y = test_digits
    final = pgd(model, x, y, 0.1, 0.03, 30, random_start=False)
    early = pgd(model, x, y, 0.1, 0.03, 30, random_start=False, early_stop=True)
    assert _fooled(model, early, y).sum() >= _fooled(model, final, y).sum()
    d_early = (early - x).abs().flatten(1).sum(1)
    d_final = (final - x).abs().flatten(1).sum(1)
    assert d_early.sum() < d_final.sum()                                 # frozen samples moved less


def test_targeted_pgd_reaches_the_target(cnn, test_digits):
    """Targeted PGD at eps 0.3 makes the model predict the chosen class for nearly every input."""
    _, model = cnn
    x, y = test_digits
    target = (y + 5) % 10
    adv = pgd(model, x, target, 0.3, steps=40, targeted=True)
    with torch.no_grad():
        assert (model(adv).argmax(-1) == target).float().mean() >= 0.9


def test_input_gradient_leaves_parameter_grads_untouched(cnn, test_digits):
    """Attacks differentiate w.r.t. the input only: p.grad stays None (adversarial training relies on it)."""
    _, model = cnn
    x, y = test_digits
    model.zero_grad(set_to_none=True)                                    # other oracles (ART) leave grads
    pgd(model, x[:8], y[:8], 0.1, steps=2)
    grad, logits, loss = input_gradient(model, x[:8], y[:8])
    assert all(p.grad is None for p in model.parameters())
    assert grad.shape == x[:8].shape and logits.shape == (8, 10) and loss.shape == (8,)


def test_projection_is_onto_the_ball():
    """Π: L∞ clamps each coordinate; L2 rescales only vectors longer than eps (hand values)."""
    d = torch.tensor([[[[3.0, 4.0]]], [[[0.3, 0.4]]]])                   # norms 5 and 0.5
    assert torch.allclose(project(d, 1.0, "l2"), torch.tensor([[[[0.6, 0.8]]], [[[0.3, 0.4]]]]))
    assert torch.equal(project(d, 0.35, "linf"), torch.tensor([[[[0.35, 0.35]]], [[[0.3, 0.35]]]]))


@pytest.mark.parametrize("kwargs", [dict(norm="l1"), dict(eps=-0.1), dict(steps=0), dict(clip_min=1.0)])
def test_invalid_arguments_are_one_line_config_errors(cnn, test_digits, kwargs):
    _, model = cnn
    x, y = test_digits
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ConfigError):
        pgd(model, x[:2], y[:2], **args)
