"""Tour section: the per-rank memory split of each ``--strategy`` (ZeRO, Rajbhandari et al. 2020;
FSDP2, Zhao et al. 2023), measured live on 2 gloo ranks launched with torchrun, with each strategy's
loss next to the single-process run's. Falls back to a recorded table if the launch cannot finish
within the budget.

    python -m frontierkit.train.dist_demo SPEC.json     # the torchrun worker (internal)
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..report import Section, TourContext
from .distributed import torchrun

STRATEGIES = ("ddp", "zero1", "zero2", "fsdp")
# recorded on the 2-core CPU (gloo, 2 ranks) with this demo's model, when a live run does not fit
RECORDED = [
    {"strategy": "ddp", "params KiB": 16.5, "grads KiB": 16.5, "optimizer KiB": 33.0, "optim / ddp": 1.0},
    {"strategy": "zero1", "params KiB": 16.5, "grads KiB": 16.5, "optimizer KiB": 16.5, "optim / ddp": 0.5},
    {"strategy": "zero2", "params KiB": 8.25, "grads KiB": 8.25, "optimizer KiB": 16.5, "optim / ddp": 0.5},
    {"strategy": "fsdp", "params KiB": 8.25, "grads KiB": 8.25, "optimizer KiB": 16.5, "optim / ddp": 0.5},
]


class DemoMLP(nn.Module):
    """Four equal tanh layers (the model knows nothing of sharding)."""

    def __init__(self, d: int = 32, n_layers: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(d, d) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))                                   # (B, d)
        return self.layers[-1](x)                                      # (B, d)


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def _train(strategy: str, out: Path) -> Any:
    from ..data import TensorBatches
    from .config import TrainConfig
    from .loop import Trainer
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=g)                               # (N, d)
    y = torch.sin(x @ torch.randn(32, 32, generator=g))                # (N, d)
    torch.manual_seed(0)
    cfg = TrainConfig(steps=3, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=0, schedule="constant",
                      log_every=1, strategy=strategy)  # type: ignore[arg-type]
    trainer = Trainer(DemoMLP(), _loss, TensorBatches(x, y, batch_size=8, seed=0), cfg, out=out, quiet=True)
    trainer.fit(resume=False)
    return trainer


def worker(spec_file: str) -> None:
    """torchrun entry: each strategy in turn; rank 0 writes memory rows and losses."""
    import torch.distributed as dist
    from .distributed import init_process_group
    torch.set_num_threads(1)
    spec = json.loads(Path(spec_file).read_text())
    rank, _, _ = init_process_group()
    results = {}
    for s in STRATEGIES:
        trainer = _train(s, Path(spec["out"]) / s)
        results[s] = {"memory": trainer.memory, "losses": [h["loss"] for h in trainer.history]}
    if rank == 0:
        Path(spec["out"], "results.json").write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


def run_live(out: Path, timeout: float) -> dict[str, Any]:
    """Launch the worker on 2 gloo ranks; raises on failure or timeout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps({"out": str(out)}))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    rc, _, err = torchrun(["-m", "frontierkit.train.dist_demo", str(out / "spec.json")], nproc=2,
                          timeout=timeout, env=env)
    if rc != 0:
        raise RuntimeError(err[-2000:])
    return json.loads((out / "results.json").read_text())


def tour(ctx: TourContext) -> Section:
    """Per-rank parameter / gradient / optimizer-state bytes of ddp, zero1, zero2, fsdp on 2 ranks."""
    t0 = time.perf_counter()
    single = [h["loss"] for h in _train("single", ctx.out / "single").history]
    try:
        results = run_live(ctx.out / "live", timeout=50 if ctx.quick else 180)
        how = "measured live: torchrun --nproc_per_node 2, gloo"
    except Exception as e:  # no fork/port, timeout on a busy machine: show the recorded split instead
        return Section(title="Distributed training: memory per rank", seconds=time.perf_counter() - t0,
                       summary=f"Live 2-rank run unavailable ({type(e).__name__}); recorded table shown.",
                       tables=[("recorded per-rank memory (2 gloo ranks)", RECORDED)])
    ddp_optim = results["ddp"]["memory"][0]["optim_bytes"]
    rows = []
    for s, r in results.items():
        for m in r["memory"]:
            rows.append({"strategy": s, "rank": m["rank"], "params KiB": m["param_bytes"] / 1024,
                         "grads KiB": m["grad_bytes"] / 1024, "optimizer KiB": m["optim_bytes"] / 1024,
                         "optim / ddp": m["optim_bytes"] / ddp_optim,
                         "max |loss - single|": max(abs(a - b) for a, b in zip(r["losses"], single))})
    return Section(
        title="Distributed training: memory per rank",
        summary=("The same model and loss under --strategy ddp / zero1 (ZeroRedundancyOptimizer) / zero2 "
                 "(FSDP2, no reshard after forward) / fsdp (FSDP2 = ZeRO-3), 2 ranks, "
                 f"{how}. Optimizer state halves from zero1 on, gradients from zero2, parameters at rest "
                 "under FSDP2; every strategy's loss equals the single-process run's."),
        tables=[("bytes each rank holds after step 1", rows)],
        seconds=time.perf_counter() - t0)


if __name__ == "__main__":
    worker(sys.argv[1])
