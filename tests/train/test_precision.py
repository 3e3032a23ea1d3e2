"""``train.precision = "auto"`` and the CPU-capability record (frontierkit.hardware).

Oracles: truth tables over CPU flags x torch kernel level (bf16 is native only with avx512_bf16 or
amx_bf16 instructions *and* torch's AVX512 kernels), a child process with
``ATEN_CPU_CAPABILITY=default``, and the files a run and a benchmark writer leave behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frontierkit import hardware
from frontierkit.train import Trainer, TrainConfig
from frontierkit.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flags, capability, native", [
    ({"avx512f", "avx512_bf16"}, "AVX512", True),      # Cooper Lake, Zen 4
    ({"amx_tile", "amx_bf16"}, "AVX512", True),        # Sapphire Rapids
    ({"avx512f", "avx512_bf16"}, "AVX2", False),       # ATEN_CPU_CAPABILITY=avx2: no bf16 kernels
    ({"avx512f", "avx512_bf16"}, "DEFAULT", False),    # ATEN_CPU_CAPABILITY=default
    ({"avx512f"}, "AVX512", False),                    # Skylake-X: AVX512 without bf16 instructions
    ({"avx2"}, "AVX2", False),
    (set(), "AVX512", False),                          # no /proc/cpuinfo
])
def test_native_bf16_needs_both_the_instructions_and_torch_kernels(flags, capability, native):
    assert hardware.native_bf16_cpu(frozenset(flags), capability) is native


def test_resolve_precision_maps_only_auto(monkeypatch):
    for p in ("fp32", "bf16", "fp16"):
        assert hardware.resolve_precision(p, "cpu") == p
    monkeypatch.setattr(hardware, "native_bf16_cpu", lambda *a, **k: True)
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "native_bf16_cpu", lambda *a, **k: False)
    assert hardware.resolve_precision("auto", "cpu") == "fp32"
    assert hardware.resolve_precision("auto", "meta") == "fp32"


def test_aten_cpu_capability_default_turns_native_bf16_off():
    """A child process with ATEN_CPU_CAPABILITY=default reports DEFAULT kernels and no native bf16."""
    code = ("from frontierkit import hardware as h; import json; "
            "print(json.dumps([h.torch_cpu_capability(), h.native_bf16('cpu'), h.resolve_precision('auto', 'cpu')]))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ATEN_CPU_CAPABILITY="default"),
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["DEFAULT", False, "fp32"]


def test_cpu_capability_record_is_plain_json():
    info = hardware.cpu_capability()
    assert json.loads(json.dumps(info)) == info
    assert {"cpu", "torch_capability", "avx512_bf16", "amx_bf16", "amx_tile", "native_bf16"} <= set(info)
    assert info["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "native bf16" in hardware.capability_line(info)


class Rows:
    units = "samples"

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 6, generator=g)
        self.y = torch.tanh(self.x @ torch.randn(6, 3, generator=g))

    def batch(self, i, rank=0, world=1):
        lo = (i % 4) * 16
        return self.x[lo:lo + 16], self.y[lo:lo + 16]

    def count(self, batch):
        return batch[0].shape[0]


def mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


@pytest.mark.parametrize("native", [False, True])
def test_trainer_resolves_auto_and_records_it(tmp_path, monkeypatch, native: bool):
    """auto -> bf16 on a (pretended) native-bf16 CPU, fp32 otherwise; the resolved value is in the tracker's
    params (with the CPU record), in trainer.pt and in the TrainResult, and the run config keeps "auto"."""
    from frontierkit.track import make_tracker
    monkeypatch.setattr(hardware, "native_bf16_cpu", lambda *a, **k: native)
    want = "bf16" if native else "fp32"
    torch.manual_seed(0)
    tracker = make_tracker("jsonl", tmp_path)
    cfg = TrainConfig(steps=2, batch_size=16, lr=1e-2, warmup_steps=0, log_every=1, precision="auto")
    result = Trainer(nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)), mse, Rows(), cfg,
                     out=tmp_path, tracker=tracker, quiet=True).fit()
    tracker.close()
    params = json.loads((tmp_path / "params.json").read_text())
    assert params["train"]["precision"] == "auto"
    assert params["hardware"]["precision"] == want and "torch_capability" in params["hardware"]
    assert ckpt.load_trainer_state(ckpt.latest_checkpoint(tmp_path))["precision"] == want
    assert result.precision == want


def test_auto_is_accepted_from_the_command_line_and_by_deepspeed_json(tmp_path):
    from frontierkit.config import from_dict
    from frontierkit.train.strategy import deepspeed_config
    assert from_dict(TrainConfig, {"precision": "auto"}, prefix="train.").precision == "auto"
    ds = tmp_path / "bf16.json"
    ds.write_text(json.dumps({"bf16": {"enabled": True}}))
    cfg = TrainConfig(strategy="deepspeed", deepspeed_config=str(ds), precision="auto", batch_size=8)
    assert deepspeed_config(cfg, world=1)["bf16"]["enabled"]          # auto defers to the JSON's bf16


@pytest.mark.parametrize("module", ["llm_common", "rl_common"])
def test_benchmark_writers_record_the_cpu_capability(tmp_path, monkeypatch, module: str):
    """Both shared result writers of benchmarks/ put cpu_capability() in the JSON and a line in the markdown."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import importlib
    mod = importlib.import_module(module)
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    rows = [{"name": "x", "value": 1.0}]
    if module == "llm_common":
        mod.write_results("probe", rows, {"ok": True})
    else:
        mod.write_results("probe", {}, rows, "python benchmarks/probe.py", ["a note"])
    data = json.loads((tmp_path / "probe.json").read_text())
    assert data["cpu_capability"] == hardware.cpu_capability()
    assert f"- cpu capability: {hardware.capability_line()}" in (tmp_path / "probe.md").read_text()
