"""Distributed strategies (ddp, zero1, zero2, fsdp) against the single-process Trainer.

Oracle: the single-process run of the same Trainer (fp32, same global batch, same seed).
Launch: 2 gloo ranks via ``torchrun`` (``python -m torch.distributed.run``), this file as the worker.
Tolerance: loss sequence and final (exported, consolidated) weights within 1e-5 absolute.

One torchrun launch runs every job in sequence (a job = one Trainer.fit), to pay the process
start-up once on a 2-core machine. The resharding chain also runs inside that launch: a 2-rank
job saves a DCP checkpoint, then rank 0 alone runs a ``strategy=single`` Trainer (world size 1,
no collectives) that resumes from it, then 2 ranks resume from the single-process checkpoint.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
TOL = 1e-5
STEPS = 4
# a cosine schedule with warmup for parity; a constant one for the resume chain (whose legs change steps)
PARITY = dict(steps=STEPS, batch_size=8, grad_accum=2, lr=2e-2, warmup_steps=1, schedule="cosine",
              grad_clip=0.1, weight_decay=0.1, log_every=1, seed=0)
CHAIN = dict(PARITY, schedule="constant", warmup_steps=0)


class TinyMLP(nn.Module):
    """Four equal 16x16 tanh layers (equal sizes: ZeRO-1's per-parameter partition splits evenly)."""

    def __init__(self, d: int = 16, n_layers: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(d, d) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)                                           # (B, d)
            x = torch.tanh(x) if i < len(self.layers) - 1 else x
        return x


def mse_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def tiny_data():
    from frontierkit.data import TensorBatches
    g = torch.Generator().manual_seed(123)
    x = torch.randn(64, 16, generator=g)                          # (N, d)
    y = torch.sin(x @ torch.randn(16, 16, generator=g))            # (N, d)
    return TensorBatches(x, y, batch_size=PARITY["batch_size"], seed=0)


def run_job(cfg: dict, out: str) -> dict:
    """Train TinyMLP with ``cfg`` into ``out``; rank 0 returns losses, grad norms and the memory report."""
    from frontierkit.train import Trainer, TrainConfig
    torch.manual_seed(0)
    model = TinyMLP()
    trainer = Trainer(model, mse_loss, tiny_data(), TrainConfig(**cfg), out=out, quiet=True)
    trainer.fit()
    return {"losses": [h["loss"] for h in trainer.history], "grad_norms": [h["grad_norm"] for h in trainer.history],
            "memory": trainer.memory, "world": trainer.strategy.world}


def job_function(job: dict):
    """``run_job``, or the ``"fn"`` of test module ``"module"`` (another test file reusing this launcher)."""
    if "fn" not in job:
        return run_job
    import importlib
    return getattr(importlib.import_module(job.get("module", "test_distributed")), job["fn"])


def worker(jobs_file: str) -> None:
    """torchrun entry: run each job; ``"only_rank0"`` jobs run single-process on rank 0 while rank 1 waits."""
    import torch.distributed as dist
    from frontierkit.train.distributed import init_process_group
    torch.set_num_threads(1)
    rank, _, _ = init_process_group()
    for job in json.loads(Path(jobs_file).read_text()):
        if job.get("only_rank0") and rank != 0:
            dist.barrier()
            continue
        result = job_function(job)(job["cfg"], job["out"])
        if rank == 0:
            Path(job["out"], "result.json").write_text(json.dumps(result))
        dist.barrier()
    dist.destroy_process_group()


def torchrun(jobs: list[dict], tmp: Path, timeout: int = 240) -> None:
    """Launch this file on 2 gloo ranks with ``jobs``; fail with the workers' output on error."""
    path = tmp / "jobs.json"
    path.write_text(json.dumps(jobs))
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONWARNINGS="ignore",
               TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions")))
    from frontierkit.train.distributed import torchrun as launch
    try:
        rc, out, err = launch([str(HERE), str(path)], nproc=2, timeout=timeout, env=env, cwd=ROOT)
    except TimeoutError as e:
        pytest.fail(f"{e} (machine overloaded?)")
    assert rc == 0, f"torchrun failed ({rc}):\n{out[-4000:]}\n{err[-6000:]}"


def read(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def weights(out: Path) -> dict[str, torch.Tensor]:
    from frontierkit.train.checkpoint import load_model_state
    return load_model_state(out / "model")


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert set(wa) == set(wb)
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


TORCH_STRATEGIES = ("ddp", "zero1", "zero2", "fsdp")


def _run_cfg_cls():
    from dataclasses import dataclass, field
    from frontierkit.train import TrainConfig

    @dataclass(frozen=True, kw_only=True)
    class RunCfg:
        train: TrainConfig = field(default_factory=TrainConfig)
        """training loop"""
    RunCfg.__annotations__["train"] = TrainConfig  # resolve the postponed annotation
    return RunCfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Single-process references in this process, then one 2-rank launch with every distributed job."""
    tmp = tmp_path_factory.mktemp("dist")
    Path(tmp, "single").mkdir()
    Path(tmp, "single", "result.json").write_text(json.dumps(run_job(PARITY, str(tmp / "single"))))
    ref9 = tmp / "single-chain9"
    ref9.mkdir()
    (ref9 / "result.json").write_text(json.dumps(run_job(dict(CHAIN, steps=9), str(ref9))))
    for low in ("bf16", "fp16"):
        (tmp / f"single-{low}").mkdir()
        (tmp / f"single-{low}" / "result.json").write_text(json.dumps(run_job(dict(PARITY, precision=low),
                                                                              str(tmp / f"single-{low}"))))
    jobs = [{"cfg": dict(PARITY, strategy=s), "out": str(tmp / s)} for s in TORCH_STRATEGIES]
    for low, strategies in (("bf16", TORCH_STRATEGIES), ("fp16", ("ddp", "zero1"))):
        jobs += [{"cfg": dict(PARITY, strategy=s, precision=low), "out": str(tmp / f"{s}-{low}")} for s in strategies]
    for s in ("fsdp", "zero1"):  # 2 ranks -> 1 rank -> 2 ranks, one checkpoint each way
        out = str(tmp / f"chain-{s}")
        jobs += [{"cfg": dict(CHAIN, steps=3, strategy=s), "out": out},
                 {"cfg": dict(CHAIN, steps=6), "out": out, "only_rank0": True},
                 {"cfg": dict(CHAIN, steps=9, strategy=s), "out": out}]
    torchrun(jobs, tmp)
    return tmp


@pytest.mark.slow
@pytest.mark.parametrize("strategy", TORCH_STRATEGIES)
def test_strategy_matches_single_process_within_1e5(runs: Path, strategy: str):
    """Loss per step and consolidated model.safetensors equal the single-process run within 1e-5."""
    ref, got = read(runs / "single"), read(runs / strategy)
    assert got["world"] == 2 and len(got["losses"]) == STEPS
    assert max(abs(a - b) for a, b in zip(ref["losses"], got["losses"])) < TOL
    assert max(abs(a - b) for a, b in zip(ref["grad_norms"], got["grad_norms"])) < TOL
    assert min(ref["grad_norms"]) > PARITY["grad_clip"]  # clipping was active in every step
    assert max_weight_diff(runs / "single", runs / strategy) < TOL


@pytest.mark.slow
@pytest.mark.parametrize("strategy", TORCH_STRATEGIES)
def test_bf16_autocast_composes_with_strategy(runs: Path, strategy: str):
    """bf16 autocast + accumulation + clipping under each strategy vs the single-process bf16 run: losses
    within 1e-4, weights within 1.5e-3, and both gaps smaller than bf16's own gap to the fp32 run (bf16
    matmuls on half-batches round differently; weights, gradients and reductions stay fp32)."""
    ref, got, fp32 = read(runs / "single-bf16"), read(runs / f"{strategy}-bf16"), read(runs / "single")
    loss_gap = max(abs(a - b) for a, b in zip(ref["losses"], got["losses"]))
    weight_gap = max_weight_diff(runs / "single-bf16", runs / f"{strategy}-bf16")
    assert loss_gap < 1e-4 and weight_gap < 1.5e-3
    assert loss_gap < max(abs(a - b) for a, b in zip(ref["losses"], fp32["losses"]))
    assert weight_gap < max_weight_diff(runs / "single-bf16", runs / "single")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ("ddp", "zero1"))
def test_fp16_loss_scaling_composes_with_strategy(runs: Path, strategy: str):
    """fp16 autocast + GradScaler (scale, unscale once, then clip) under ddp/zero1 vs single-process fp16:
    losses within 1e-4, weights within 1.5e-3 (fp16 matmuls on half-batches round differently)."""
    ref, got = read(runs / "single-fp16"), read(runs / f"{strategy}-fp16")
    assert max(abs(a - b) for a, b in zip(ref["losses"], got["losses"])) < 1e-4
    assert max_weight_diff(runs / "single-fp16", runs / f"{strategy}-fp16") < 1.5e-3


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ("zero1", "zero2", "fsdp"))
def test_sharded_optimizer_state_is_half_of_ddp_per_rank(runs: Path, strategy: str):
    """Measured optimizer-state bytes per rank = ddp's / world_size within 5%; zero2/fsdp also halve gradients."""
    ddp = read(runs / "ddp")["memory"]
    got = read(runs / strategy)["memory"]
    assert [r["rank"] for r in got] == [0, 1]
    for d, g in zip(ddp, got):
        assert abs(g["optim_bytes"] / d["optim_bytes"] - 0.5) < 0.05
        if strategy in ("zero2", "fsdp"):
            assert abs(g["grad_bytes"] / d["grad_bytes"] - 0.5) < 0.05
        else:
            assert g["grad_bytes"] == d["grad_bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ("fsdp", "zero1"))
def test_resume_across_world_sizes_matches_uninterrupted_run(runs: Path, strategy: str):
    """2 ranks (steps 1-3, DCP) -> 1 rank (4-6, safetensors+trainer.pt) -> 2 ranks (7-9) == one single run, 1e-5."""
    ref, got = read(runs / "single-chain9"), read(runs / f"chain-{strategy}")
    assert len(got["losses"]) == 9
    assert max(abs(a - b) for a, b in zip(ref["losses"], got["losses"])) < TOL
    assert max_weight_diff(runs / "single-chain9", runs / f"chain-{strategy}") < TOL
    step9 = runs / f"chain-{strategy}" / "checkpoints" / "step-0000009"
    assert sorted(p.name for p in (step9 / "dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert not (step9 / "model.safetensors").exists()  # sharded: no full copy per step


def test_strategy_config_validation_names_the_field():
    from frontierkit.config import ConfigError
    from frontierkit.train import TrainConfig
    with pytest.raises(ConfigError, match="train.deepspeed_config"):
        TrainConfig(strategy="deepspeed")
    with pytest.raises(ConfigError, match="train.deepspeed_config"):
        TrainConfig(strategy="fsdp", deepspeed_config="ds.json")
    with pytest.raises(ConfigError, match="train.cpu_offload"):
        TrainConfig(strategy="ddp", cpu_offload=True)
    with pytest.raises(ConfigError, match="train.precision"):
        TrainConfig(strategy="fsdp", precision="fp16")
    with pytest.raises(ConfigError, match="train.strategy"):
        from frontierkit.config import from_dict
        from_dict(TrainConfig, {"strategy": "zero4"}, prefix="train.")


def test_strategy_flag_maps_to_train_strategy(tmp_path, monkeypatch):
    """``--strategy fsdp`` is an alias of ``--train.strategy fsdp`` on every run command."""
    import argparse
    from frontierkit.command import add_run_args, build_config, split_overrides
    p = argparse.ArgumentParser()
    add_run_args(p, _run_cfg_cls(), "x")
    args, rest = p.parse_known_args(["--strategy", "fsdp", "--train.steps", "50"])
    split_overrides(args, rest)
    cfg = build_config(args)
    assert cfg.train.strategy == "fsdp" and cfg.train.steps == 50
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds.json").write_text("{}")                  # --deepspeed-config must name an existing file
    args, rest = p.parse_known_args(["--strategy", "deepspeed", "--deepspeed-config", "ds.json"])
    split_overrides(args, rest)
    assert build_config(args).train.deepspeed_config == "ds.json"


if __name__ == "__main__":
    worker(sys.argv[1])
