"""The DeepSpeed engine behind ``--strategy deepspeed`` against the single-process Trainer.

Oracle: the single-process run (fp32, same global batch, clipping 0.1 in both: the JSONs carry no
``gradient_clipping``, so train.grad_clip is written into the DeepSpeed config instead of
DeepSpeed's default 1.0). 2 gloo ranks via torchrun, DS_ACCELERATOR=cpu. Tolerance 1e-5.
The seed's JSON (ZeRO-3 + optimizer offload to CPU, configs/deepspeed/zero3_offload.json) runs
unchanged; its DeepSpeedCPUAdam op is compiled once into TORCH_EXTENSIONS_DIR (.cache/).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

# checked without importing it here: DeepSpeed is imported only inside the torchrun workers
pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                reason="deepspeed not installed: pip install 'frontierkit[deepspeed]'")

from test_distributed import CHAIN, PARITY, ROOT, STEPS, TOL, max_weight_diff, read, run_job, torchrun  # noqa: E402

SEED_JSON = ROOT / "configs" / "deepspeed" / "zero3_offload.json"
ZERO2_JSON = ROOT / "configs" / "deepspeed" / "zero2.json"


@pytest.fixture(scope="module")
def ds_runs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ds")
    clip1 = tmp / "clip1.json"   # DeepSpeed's default made explicit: the JSON's value must win over train.grad_clip
    clip1.write_text(json.dumps({"zero_optimization": {"stage": 2}, "gradient_clipping": 1.0}))
    for name, cfg in (("single", PARITY), ("single-chain6", dict(CHAIN, steps=6)),
                      ("single-clip1", dict(PARITY, grad_clip=1.0))):
        (tmp / name).mkdir()
        (tmp / name / "result.json").write_text(json.dumps(run_job(cfg, str(tmp / name))))
    ds = lambda path: {"strategy": "deepspeed", "deepspeed_config": str(path)}  # noqa: E731
    chain = str(tmp / "chain")
    jobs = [{"cfg": dict(PARITY, strategy="ddp"), "out": str(tmp / "ddp")},
            {"cfg": dict(PARITY, **ds(ZERO2_JSON)), "out": str(tmp / "zero2")},
            {"cfg": dict(PARITY, **ds(SEED_JSON)), "out": str(tmp / "seed")},
            {"cfg": dict(CHAIN, steps=3, **ds(SEED_JSON)), "out": chain},
            {"cfg": dict(CHAIN, steps=6, **ds(SEED_JSON)), "out": chain},
            {"cfg": dict(PARITY, **ds(clip1)), "out": str(tmp / "clip1")}]
    torchrun(jobs, tmp, timeout=420)
    return tmp


@pytest.mark.slow
@pytest.mark.parametrize("run", ("zero2", "seed"))
def test_deepspeed_matches_single_process_within_1e5(ds_runs: Path, run: str):
    """ZeRO-2 (torch AdamW) and the seed's ZeRO-3 + CPU-offload JSON (DeepSpeedCPUAdam): losses,
    pre-clip gradient norms and exported weights equal the single-process run within 1e-5."""
    ref, got = read(ds_runs / "single"), read(ds_runs / run)
    assert got["world"] == 2 and len(got["losses"]) == STEPS
    assert max(abs(a - b) for a, b in zip(ref["losses"], got["losses"])) < TOL
    assert max(abs(a - b) for a, b in zip(ref["grad_norms"], got["grad_norms"])) < TOL
    assert max_weight_diff(ds_runs / "single", ds_runs / run) < TOL


@pytest.mark.slow
@pytest.mark.parametrize("run", ("zero2", "seed"))
def test_deepspeed_optimizer_state_is_half_of_ddp_per_rank(ds_runs: Path, run: str):
    """Adam moments over each rank's flat partition = ddp's optimizer bytes / 2 within 5%."""
    ddp, got = read(ds_runs / "ddp")["memory"], read(ds_runs / run)["memory"]
    for d, g in zip(ddp, got):
        assert abs(g["optim_bytes"] / d["optim_bytes"] - 0.5) < 0.05
    if run == "seed":  # ZeRO-3 partitions the parameters too
        assert all(abs(g["param_bytes"] / d["param_bytes"] - 0.5) < 0.05 for d, g in zip(ddp, got))


@pytest.mark.slow
def test_deepspeed_checkpoint_resume_matches_uninterrupted_run(ds_runs: Path):
    """Seed JSON: save at step 3 (engine.save_checkpoint), resume in a new engine to 6 == 6 straight steps, 1e-5."""
    ref, got = read(ds_runs / "single-chain6"), read(ds_runs / "chain")
    assert len(got["losses"]) == 6
    assert max(abs(a - b) for a, b in zip(ref["losses"], got["losses"])) < TOL
    assert max_weight_diff(ds_runs / "single-chain6", ds_runs / "chain") < TOL
    assert (ds_runs / "chain" / "checkpoints" / "step-0000006" / "deepspeed" / "state").is_dir()


def test_deepspeed_config_takes_batch_and_clipping_from_train_config(tmp_path: Path):
    """Absent fields are filled (clipping = train.grad_clip, not DeepSpeed's 1.0); contradictions name the field."""
    from frontierkit.config import ConfigError
    from frontierkit.train import TrainConfig
    from frontierkit.train.strategy import deepspeed_config
    cfg = TrainConfig(strategy="deepspeed", deepspeed_config=str(SEED_JSON), batch_size=8, grad_accum=2, grad_clip=0.1)
    conf = deepspeed_config(cfg, world=2)
    assert conf["zero_optimization"] == json.loads(SEED_JSON.read_text())["zero_optimization"]
    assert (conf["train_micro_batch_size_per_gpu"], conf["gradient_accumulation_steps"], conf["train_batch_size"],
            conf["gradient_clipping"]) == (4, 2, 16, 0.1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train_batch_size": 64}))
    with pytest.raises(ConfigError, match="train.deepspeed_config"):
        deepspeed_config(TrainConfig(strategy="deepspeed", deepspeed_config=str(bad), batch_size=8), world=2)
    bf16 = tmp_path / "bf16.json"
    bf16.write_text(json.dumps({"bf16": {"enabled": True}}))
    with pytest.raises(ConfigError, match="train.precision"):
        deepspeed_config(TrainConfig(strategy="deepspeed", deepspeed_config=str(bf16), precision="bf16"), world=1)
    with pytest.raises(ConfigError, match="train.deepspeed_config"):
        deepspeed_config(TrainConfig(strategy="deepspeed", deepspeed_config=str(tmp_path / "nope.json")), world=1)


@pytest.mark.slow
def test_deepspeed_json_gradient_clipping_wins(ds_runs: Path):
    """A JSON with gradient_clipping=1.0 (DeepSpeed's default) and train.grad_clip=0.1: DeepSpeed clips at
    1.0, i.e. equals the single-process run with grad_clip=1.0 within 1e-5 and differs from the 0.1 run."""
    got = read(ds_runs / "clip1")
    ref1, ref01 = read(ds_runs / "single-clip1"), read(ds_runs / "single")
    assert max(abs(a - b) for a, b in zip(ref1["losses"], got["losses"])) < TOL
    assert max_weight_diff(ds_runs / "single-clip1", ds_runs / "clip1") < TOL
    assert max_weight_diff(ds_runs / "single", ds_runs / "clip1") > 1e-3 and ref01["losses"] != got["losses"]


def test_checkpoints_refuse_the_other_engine(tmp_path: Path):
    """A DeepSpeed checkpoint does not load into a torch strategy (and vice versa): CheckpointError says why,
    raised when the Trainer is built, before the model is wrapped or sharded."""
    import torch
    from frontierkit.errors import CheckpointError
    from frontierkit.train import Trainer, TrainConfig
    from test_distributed import TinyMLP, mse_loss, tiny_data
    step = tmp_path / "checkpoints" / "step-0000001"
    (step / "deepspeed").mkdir(parents=True)
    torch.save({"step": 1, "world": 2}, step / "trainer.pt")
    (tmp_path / "checkpoints" / "latest").write_text(step.name)
    with pytest.raises(CheckpointError, match="--strategy deepspeed"):
        Trainer(TinyMLP(), mse_loss, tiny_data(), TrainConfig(**PARITY), out=tmp_path, quiet=True)
