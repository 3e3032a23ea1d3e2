"""Recipe and CLI: the tiny recipe's held-out loss follows its golden curve (tests/llm/golden/,
recorded from `frontier llm train --config configs/llm/tiny.toml`; tol 0.05 nats); train -> generate ->
eval -> export end to end, the export loading in transformers with logits within 1e-5."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from frontierkit.cli import main
from frontierkit.config import load_config
from frontierkit.llm.recipe import LLMRunConfig, load_model, make_trainer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "tiny_val_loss.json"


@pytest.mark.learned
def test_tiny_recipe_follows_golden_val_loss_curve(tmp_path):
    """Oracle: the recorded curve of the full tiny run; the first 20 steps match within 0.05 nats, and the
    golden curve itself falls by > 1 nat after step 20 (the recipe visibly learns).
    Measured at step 20 (issue 9): 6.38504 under ATEN_CPU_CAPABILITY=default, avx2 and native (1 thread), and
    native with 2 threads: a spread below 1e-5 nats, so the 0.05 tolerance leaves > 1000x margin for the BLAS
    code paths of other CPUs (AVX-512 MKL is not simulated by ATEN_CPU_CAPABILITY). Untrained: ln 2048 = 7.62."""
    golden = json.loads(GOLDEN.read_text())
    curve = {int(k): v for k, v in golden["val_loss"].items()}
    assert curve[max(curve)] < curve[min(curve)] - 1.0
    cfg = load_config(LLMRunConfig, ROOT / "configs/llm/tiny.toml")
    trainer, _ = make_trainer(cfg, tmp_path)
    torch.manual_seed(cfg.train.seed)
    checked = 0
    while trainer.step < 20:
        trainer.train_step()
        if trainer.step in curve:
            got = trainer.evaluate()["eval/val_loss"]
            assert abs(got - curve[trainer.step]) <= golden["tolerance"], (trainer.step, got, curve[trainer.step])
            checked += 1
    assert checked == 1


def _cli(*args: str) -> int:
    return main(list(args))


def test_cli_train_generate_eval_export_roundtrip(tmp_path, capsys):
    tf = pytest.importorskip("transformers")
    out = tmp_path / "run"
    rc = _cli("llm", "train", "--config", str(ROOT / "configs/llm/tiny.toml"), "--out", str(out), "--tracker", "none",
              "--quiet", "--train.steps", "6", "--train.warmup_steps", "1", "--train.eval_every", "3",
              "--model.n_layers", "1", "--data.max_chars", "200000")
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 6 and summary["val_loss"] < 7.7
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model"]["n_layers"] == 1 and config["run"]["data"]["seq_len"] == 128

    assert _cli("llm", "generate", "--model", str(out), "--prompt", "import os", "--max-new-tokens", "8",
                "--temperature", "0") == 0
    text = capsys.readouterr().out
    assert text.startswith("import os") and len(text) > len("import os\n")

    assert _cli("llm", "eval", "--model", str(out), "--batches", "2") == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["data"] == "pycorpus val" and ev["perplexity"] == pytest.approx(2.718281828 ** ev["loss"], rel=1e-3)

    assert _cli("llm", "export", "--model", str(out), "--out", str(tmp_path / "hf")) == 0
    model, tok, _ = load_model(out)
    hf = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    x = torch.tensor([tok.encode("def main():\n    return 0").ids])
    with torch.no_grad():
        assert (hf(x).logits - model(x)).abs().max().item() <= 1e-5


def test_cli_train_on_a_text_folder(tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("the quick brown fox jumps over the lazy dog. " * 400)
    rc = _cli("llm", "train", "--config", str(ROOT / "configs/llm/tiny.toml"), "--data", str(folder),
              "--out", str(tmp_path / "run"), "--tracker", "none", "--quiet", "--train.steps", "3",
              "--train.warmup_steps", "0", "--model.n_layers", "1", "--data.seq_len", "32")
    assert rc == 0
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["data"]["source"] == str(folder)


def test_cli_reports_bad_config_as_one_line(tmp_path, capsys):
    rc = _cli("llm", "train", "--config", str(ROOT / "configs/llm/tiny.toml"), "--out", str(tmp_path),
              "--model.n_kv_heads", "3", "--tracker", "none")
    assert rc == 2
    err = capsys.readouterr().err
    assert "model.n_kv_heads=3" in err and "Traceback" not in err
