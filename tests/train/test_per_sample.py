"""Per-example gradients (torch.func) and the loop's ``per_sample_grads`` hook, the seam DP-SGD needs
(Abadi et al. 2016: clip each example's gradient to C, sum, add noise, divide by the lot size).

Oracles: a plain Python loop of single-example ``loss.backward()`` calls (fp32, 1e-6), and the
loop's ordinary mean-loss path. The 2-rank test reuses test_distributed.py's torchrun launcher.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit.config import ConfigError
from frontierkit.train import Hooks, Trainer, TrainConfig, per_example_norms, per_sample_grads
from test_distributed import TinyMLP, mse_loss, tiny_data, torchrun

CLIP = 2.0       # per-example clipping norm C for mlp() (its per-example norms span about 1.1 to 3.4)
CLIP_TINY = 0.65  # for TinyMLP on tiny_data (norms about 0.54 to 0.80)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


class SmallCNN(nn.Module):
    """Conv -> GroupNorm -> ReLU -> pool -> linear, with a (read-only) input-mean buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.full((1, 1, 1, 1), 0.5))
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.conv(x - self.mean)))                  # (B, 4, 8, 8)
        h = F.max_pool2d(h, 2)                                            # (B, 4, 4, 4)
        return self.head(h.flatten(1))                                    # (B, 10)


def cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def loop_of_backwards(model: nn.Module, loss_fn, batch) -> dict[str, torch.Tensor]:
    """The oracle: one ``loss.backward()`` per example (a batch of one row), stacked to (B, *shape)."""
    rows: dict[str, list[torch.Tensor]] = {n: [] for n, _ in model.named_parameters()}
    for i in range(batch[0].shape[0]):
        model.zero_grad(set_to_none=True)
        loss_fn(model, tuple(t[i:i + 1] for t in batch)).backward()
        for n, p in model.named_parameters():
            rows[n].append(p.grad.detach().clone())
    return {n: torch.stack(g) for n, g in rows.items()}


def clip_and_sum(max_norm: float):
    """DP-SGD's per-example clipping (Abadi et al. 2016, Alg. 1): sum_i g_i * min(1, C / ||g_i||)."""
    def hook(grads: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        factor = (max_norm / (per_example_norms(grads) + 1e-6)).clamp(max=1.0)    # (B,)
        return {n: torch.einsum("b,b...->...", factor, g) for n, g in grads.items()}
    return hook


def clipped_mean_oracle(model: nn.Module, loss_fn, batches: list, max_norm: float) -> dict[str, torch.Tensor]:
    """Plain loop over every example of every micro-batch: clip each, sum, divide by the example count."""
    per = [loop_of_backwards(model, loss_fn, b) for b in batches]
    grads = {n: torch.cat([p[n] for p in per]) for n in per[0]}          # (k*B, *shape)
    factor = (max_norm / (per_example_norms(grads) + 1e-6)).clamp(max=1.0)
    return {n: torch.einsum("b,b...->...", factor, g) / g.shape[0] for n, g in grads.items()}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_per_sample_grads_match_a_loop_of_single_example_backwards(kind: str):
    """Oracle: per-example ``loss.backward()`` in a Python loop; fp32, atol 1e-6 (MLP on regression,
    CNN with GroupNorm and a buffer on classification)."""
    g = torch.Generator().manual_seed(1)
    if kind == "mlp":
        model, loss_fn = mlp(), mse
        batch = (torch.randn(7, 6, generator=g), torch.randn(7, 3, generator=g))
    else:
        torch.manual_seed(0)
        model, loss_fn = SmallCNN(), cross_entropy
        batch = (torch.rand(5, 1, 8, 8, generator=g), torch.randint(0, 10, (5,), generator=g))
    got = per_sample_grads(model, loss_fn, batch)
    want = loop_of_backwards(model, loss_fn, batch)
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == (batch[0].shape[0], *dict(model.named_parameters())[name].shape)
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=0)


def test_identity_combination_trains_like_the_plain_loop(tmp_path):
    """Oracle: the loop's ordinary mean-loss path. Summing per-example grads (no clipping) with grad_accum=2
    gives the same losses and weights after 3 AdamW steps, atol 1e-6: the hook's sum is divided by the
    micro-batch size and by grad_accum exactly as a mean loss would be."""
    cfg = TrainConfig(steps=3, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=0, log_every=1, grad_clip=0.5)
    plain, per_example = mlp(), mlp()
    hooks = Hooks(per_sample_grads=lambda grads, step: {n: g.sum(0) for n, g in grads.items()})
    data = lambda: Rows(n=64)  # noqa: E731
    r1 = Trainer(plain, mse, data(), cfg, out=tmp_path / "a", quiet=True).fit()
    r2 = Trainer(per_example, mse, data(), cfg, out=tmp_path / "b", quiet=True, hooks=hooks).fit()
    assert [h["loss"] for h in r1.history] == pytest.approx([h["loss"] for h in r2.history], abs=1e-6)
    for a, b in zip(plain.parameters(), per_example.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_dp_sgd_step_is_a_few_lines_on_the_hooks(tmp_path):
    """Oracle: Abadi et al. 2016 Alg. 1 written as a plain loop, (sum_i clip_C(g_i) + sigma*C*z) / L over the
    L = 2 x 8 examples of one step (fp32, atol 1e-6). Clipping in ``per_sample_grads``, the noise once per
    step in ``grad_transform`` from a step-seeded generator (identical on every rank)."""
    sigma, lot = 1.1, 16

    def add_noise(model: nn.Module, step: int) -> None:
        gen = torch.Generator().manual_seed(1000 + step)
        for p in model.parameters():
            p.grad += sigma * CLIP / lot * torch.randn(p.shape, generator=gen)

    cfg = TrainConfig(steps=1, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=0, grad_clip=0.0)
    model = mlp()
    t = Trainer(model, mse, Rows(n=64), cfg, out=tmp_path, quiet=True,
                hooks=Hooks(per_sample_grads=clip_and_sum(CLIP), grad_transform=add_noise))
    batches = t.micro_batches(0)
    want = clipped_mean_oracle(mlp(), mse, batches, CLIP)
    norms = per_example_norms(loop_of_backwards(mlp(), mse, batches[0]))
    assert norms.min() < CLIP < norms.max()                             # clipping is active for some examples
    gen = torch.Generator().manual_seed(1000)
    for name, p in mlp().named_parameters():
        want[name] = want[name] + sigma * CLIP / lot * torch.randn(p.shape, generator=gen)
    t.train_step()
    for name, p in model.named_parameters():                            # grads stay after the step
        torch.testing.assert_close(p.grad, want[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("strategy", ["zero2", "fsdp", "deepspeed"])
def test_sharded_strategies_refuse_per_sample_grads(tmp_path, strategy: str):
    """Sharded parameters have no whole per-example gradient: ConfigError names train.strategy and the fix."""
    extra = {"deepspeed_config": "ds.json"} if strategy == "deepspeed" else {}
    cfg = TrainConfig(steps=1, warmup_steps=0, strategy=strategy, **extra)
    with pytest.raises(ConfigError, match=r"train.strategy=.*use single, ddp or zero1"):
        Trainer(mlp(), mse, Rows(), cfg, out=tmp_path, hooks=Hooks(per_sample_grads=clip_and_sum(CLIP)))


def test_fp16_is_refused_with_per_sample_grads(tmp_path):
    cfg = TrainConfig(steps=1, warmup_steps=0, precision="fp16")
    with pytest.raises(ConfigError, match="train.precision='fp16'"):
        Trainer(mlp(), mse, Rows(), cfg, out=tmp_path, hooks=Hooks(per_sample_grads=clip_and_sum(CLIP)))


def test_a_loss_calling_item_is_told_to_stay_in_tensors():
    def loss_with_float_metric(model, batch):
        loss = mse(model, batch)
        return loss, {"loss_float": loss.item()}
    batch = (torch.randn(3, 6), torch.randn(3, 3))
    with pytest.raises(RuntimeError, match="must stay in tensors"):
        per_sample_grads(mlp(), loss_with_float_metric, batch)


class Rows:
    """Regression rows 6 -> 3; micro-batch i of step s is rows [8i, 8i+8) of a fixed shuffle."""
    units = "samples"

    def __init__(self, n: int = 64, seed: int = 0):
        from frontierkit.data import TensorBatches
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 6, generator=g)                              # (N, 6)
        self.inner = TensorBatches(x, torch.tanh(x @ torch.randn(6, 3, generator=g)), batch_size=8, seed=seed)

    def batch(self, i: int, rank: int = 0, world: int = 1):
        return self.inner.batch(i, rank, world)

    def count(self, batch) -> int:
        return batch[0].shape[0]


# ---- 2 gloo ranks (launched through test_distributed.py's worker) ----------------------------

DDP_CFG = dict(steps=1, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=0, grad_clip=0.0, log_every=1,
               seed=0, strategy="ddp")


def ddp_clip_step(cfg: dict, out: str) -> dict:
    """torchrun job: one DP-SGD-style step (clip + sum hook) of TinyMLP; rank 0 writes its p.grad."""
    return _one_step(cfg, out, per_sample=True)


def ddp_plain_step(cfg: dict, out: str) -> dict:
    """torchrun job: one ordinary DDP step with a batch_transform that records what it was given."""
    return _one_step(cfg, out, per_sample=False)


def _one_step(cfg: dict, out: str, per_sample: bool) -> dict:
    from safetensors.torch import save_file
    seen: list[str] = []

    def record(module: nn.Module, batch, step: int):
        seen.append(type(module).__name__)
        return batch

    hooks = Hooks(batch_transform=record, per_sample_grads=clip_and_sum(CLIP_TINY) if per_sample else None)
    torch.manual_seed(0)
    t = Trainer(TinyMLP(), mse_loss, tiny_data(), TrainConfig(**cfg), out=out, quiet=True, hooks=hooks)
    m = t.train_step()
    Path(out).mkdir(parents=True, exist_ok=True)
    if t.strategy.is_main:
        save_file({n: p.grad.detach().contiguous() for n, p in t.model.named_parameters()}, f"{out}/grads.safetensors")
    return {"loss": m["loss"], "seen": seen, "train_model": type(t.train_model).__name__, "world": t.strategy.world}


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("per_sample_ddp")
    jobs = [{"cfg": DDP_CFG, "out": str(tmp / "clip"), "module": "test_per_sample", "fn": "ddp_clip_step"},
            {"cfg": DDP_CFG, "out": str(tmp / "plain"), "module": "test_per_sample", "fn": "ddp_plain_step"}]
    torchrun(jobs, tmp)
    return tmp


@pytest.mark.slow
def test_ddp_clipped_step_equals_a_single_process_loop_over_the_global_batch(ddp_runs: Path):
    """Oracle: one process, a plain loop over all 2 x 8 examples of the global batch (TinyMLP, 4 examples
    per rank per micro-batch): backward each, clip to C, sum, divide by 16. DDP result (per-example grads
    on each rank's plain module, hook, /(B k), all-reduce mean): fp32, atol 1e-6."""
    from safetensors.torch import load_file
    got = load_file(str(ddp_runs / "clip" / "grads.safetensors"))
    data = tiny_data()
    batches = [data.batch(j) for j in range(DDP_CFG["grad_accum"])]
    torch.manual_seed(0)
    want = clipped_mean_oracle(TinyMLP(), mse_loss, batches, CLIP_TINY)
    torch.manual_seed(0)
    norms = per_example_norms(loop_of_backwards(TinyMLP(), mse_loss, batches[0]))
    assert norms.min() < CLIP_TINY < norms.max()                             # clipping is active for some examples
    result = json.loads((ddp_runs / "clip" / "result.json").read_text())
    assert result["world"] == 2 and result["train_model"] == "DistributedDataParallel"
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["clip", "plain"])
def test_batch_transform_gets_the_plain_module_under_ddp(ddp_runs: Path, run: str):
    """An attack in batch_transform must not run through the DDP wrapper: it sees TinyMLP, per micro-batch."""
    result = json.loads((ddp_runs / run / "result.json").read_text())
    assert result["train_model"] == "DistributedDataParallel"
    assert result["seen"] == ["TinyMLP"] * DDP_CFG["grad_accum"]
