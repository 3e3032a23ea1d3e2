"""Invariants of the shared training loop: accumulation, clipping, mixed precision, NaN guard, hooks."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.errors import TrainingDiverged
from frontierkit.train import Hooks, Trainer, TrainConfig, accumulate_gradients
from frontierkit.train import checkpoint as ckpt


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


class FixedRows:
    """Step s uses rows [32*s, 32*s+32); with k micro-batches each takes a contiguous slice."""
    units = "samples"

    def __init__(self, k, n=32 * 8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.tanh(self.x @ torch.randn(6, 3, generator=g))  # a learnable target
        self.k = k

    def batch(self, i, rank=0, world=1):
        step, j = divmod(i, self.k)
        b = 32 // self.k
        lo = 32 * step + j * b
        return self.x[lo:lo + b], self.y[lo:lo + b]

    def count(self, batch):
        return batch[0].shape[0]


def grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_accumulated_gradients_equal_big_batch_fp32():
    """Invariant: 4 micro-batches of 8 give the big batch of 32's gradients (fp32, 1e-6)."""
    data = FixedRows(k=1)
    big = data.batch(0)
    m1, m2 = make_model(), make_model()
    accumulate_gradients(m1, mse, [big])
    accumulate_gradients(m2, mse, [(big[0][i:i + 8], big[1][i:i + 8]) for i in range(0, 32, 8)])
    for g1, g2 in zip(grads(m1), grads(m2)):
        torch.testing.assert_close(g1, g2, atol=1e-6, rtol=0)


def test_trainer_accumulation_matches_big_batch_weights(tmp_path):
    """Invariant through the Trainer: 5 steps of 4x8 == 5 steps of 1x32 (fp32, 1e-6)."""
    outs = []
    for k in (1, 4):
        model = make_model()
        cfg = TrainConfig(steps=5, batch_size=32 // k, grad_accum=k, lr=1e-2, warmup_steps=1, log_every=1)
        Trainer(model, mse, FixedRows(k), cfg, out=tmp_path / f"k{k}", quiet=True).fit()
        outs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_grad_clipping_bounds_the_global_norm(tmp_path):
    model = make_model()
    cfg = TrainConfig(steps=1, batch_size=32, lr=1e-3, warmup_steps=0, grad_clip=0.01, log_every=1)
    t = Trainer(model, mse, FixedRows(1), cfg, out=tmp_path, quiet=True)
    metrics = t.train_step()
    total = torch.stack([p.grad.norm() for p in model.parameters()]).norm().item()
    assert metrics["grad_norm"] > 0.01          # reported norm is the pre-clip norm
    assert total <= 0.01 * (1 + 1e-5)


def test_weight_decay_skips_biases(tmp_path):
    model = make_model()
    t = Trainer(model, mse, FixedRows(1), TrainConfig(steps=1, weight_decay=0.5, warmup_steps=0), out=tmp_path)
    decay, no_decay = t.optimizer.param_groups
    assert decay["weight_decay"] == 0.5 and all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim == 1 for p in no_decay["params"])


def test_fp16_scaler_skips_an_overflowing_step(tmp_path):
    """An injected inf gradient makes the fp16 scaler skip the step (weights unchanged) and halve the scale."""
    model = make_model()
    cfg = TrainConfig(steps=4, batch_size=32, lr=1e-2, warmup_steps=0, precision="fp16", log_every=1)
    t = Trainer(model, mse, FixedRows(1), cfg, out=tmp_path, quiet=True)
    t.train_step()
    before = [p.detach().clone() for p in model.parameters()]
    scale = t.scaler.get_scale()
    w = model[0].weight
    handle = w.register_hook(lambda g: torch.full_like(g, float("inf")))
    metrics = t.train_step()
    handle.remove()
    assert metrics["skipped"] == 1.0
    assert t.scaler.get_scale() == scale / 2
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b.detach())
    metrics = t.train_step()                       # training goes on after the skip
    assert metrics["skipped"] == 0.0
    assert not torch.equal(before[0], model[0].weight.detach())


@pytest.mark.learned
def test_bf16_autocast_trains_close_to_fp32(tmp_path):
    losses = {}
    for prec in ("fp32", "bf16"):
        model = make_model()
        cfg = TrainConfig(steps=40, batch_size=32, lr=1e-2, warmup_steps=2, precision=prec, log_every=40)
        r = Trainer(model, mse, FixedRows(1, n=32 * 40), cfg, out=tmp_path / prec, quiet=True).fit()
        losses[prec] = r.history[-1]["loss"]
    first = mse(make_model(), FixedRows(1, n=32 * 40).batch(0)).item()
    assert losses["bf16"] < 0.9 * first
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"] + 1e-3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    """NaN at step 7 raises TrainingDiverged; the step-5 checkpoint stays intact and loadable."""
    def loss_fn(model, batch):
        loss = mse(model, batch)
        return loss * float("nan") if t.step == 7 else loss

    model = make_model()
    cfg = TrainConfig(steps=10, batch_size=32, lr=1e-2, warmup_steps=0, ckpt_every=5, log_every=1)
    t = Trainer(model, loss_fn, FixedRows(1), cfg, out=tmp_path, quiet=True)
    with pytest.raises(TrainingDiverged, match="step 7"):
        t.fit()
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "step-0000005"
    fresh = make_model(seed=1)
    ckpt.load_into(fresh, latest)
    assert ckpt.load_trainer_state(latest)["step"] == 5
    assert not (tmp_path / "model").exists()        # no final export from a diverged run


def test_hooks_reach_the_loop(tmp_path):
    seen = {"batch": 0}

    def transform(model, batch, step):
        seen["batch"] += 1
        return batch[0] * 0, batch[1]               # zero inputs: a visible change

    hooks = Hooks(batch_transform=transform, extra_losses=[lambda m, b: torch.tensor(10.0)],
                  eval_callbacks=[lambda m, s: {"custom": float(s)}],
                  grad_transform=lambda m, s: [p.grad.zero_() for p in m.parameters()])
    model = make_model()
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=2, batch_size=32, lr=1e-2, warmup_steps=0, weight_decay=0.0, log_every=1)
    r = Trainer(model, mse, FixedRows(1), cfg, out=tmp_path, hooks=hooks, quiet=True).fit()
    assert seen["batch"] == 2
    assert r.history[0]["loss"] > 10.0              # extra loss term was added
    assert r.history[-1]["eval/custom"] == 2.0
    for a, b in zip(before, model.parameters()):    # zeroed grads: AdamW (no decay) leaves weights alone
        assert torch.equal(a, b.detach())


def test_trainer_lr_follows_the_configured_schedule(tmp_path):
    """The LR the optimizer used at each step equals peak * warmup_cosine(step) (closed form)."""
    from frontierkit.train.schedules import warmup_cosine

    cfg = TrainConfig(steps=30, batch_size=32, lr=2e-2, warmup_steps=5, min_lr_ratio=0.1, log_every=1)
    r = Trainer(make_model(), mse, FixedRows(1, n=32 * 30), cfg, out=tmp_path, quiet=True).fit()
    rows = [h for h in r.history if "lr" in h]
    assert [h["step"] for h in rows] == list(range(1, 31))
    for h in rows:
        expected = 2e-2 * warmup_cosine(h["step"] - 1, warmup=5, total=30, min_ratio=0.1)
        assert h["lr"] == pytest.approx(expected, rel=1e-9)


def test_resuming_a_folder_with_another_config_is_refused(tmp_path):
    """Re-running into a finished run's folder with a changed lr must not silently reuse the old weights."""
    from frontierkit.errors import CheckpointError

    cfg = TrainConfig(steps=3, batch_size=32, lr=1e-2, warmup_steps=0, log_every=1)
    Trainer(make_model(), mse, FixedRows(1), cfg, out=tmp_path, quiet=True).fit()
    changed = TrainConfig(steps=3, batch_size=32, lr=0.5, warmup_steps=0, log_every=1)
    with pytest.raises(CheckpointError, match=r"train.lr=0.01, but this run sets train.lr=0.5"):
        Trainer(make_model(), mse, FixedRows(1), changed, out=tmp_path, quiet=True).fit()
    longer = TrainConfig(steps=5, batch_size=32, lr=1e-2, warmup_steps=0, log_every=1)   # extending is fine
    r = Trainer(make_model(), mse, FixedRows(1), longer, out=tmp_path, quiet=True).fit()
    assert r.resumed_from == 3 and r.step == 5


def test_eval_every_does_not_depend_on_log_every(tmp_path):
    cfg = TrainConfig(steps=12, batch_size=32, lr=1e-2, warmup_steps=0, log_every=10, eval_every=3)
    r = Trainer(make_model(), mse, FixedRows(1, n=32 * 12), cfg, out=tmp_path, quiet=True,
                eval_fn=lambda m: {"x": 1.0}).fit()
    assert [h["step"] for h in r.history if "eval/x" in h] == [3, 6, 9, 12]
