"""ONNX export through the registry, checked with onnxruntime. Oracles: eager PyTorch (atol 1e-5, optimum's
default tolerance) and the llm area's greedy `generate` (exact tokens) for decoding with the exported KV
cache. Export is slow on a busy 2-core machine (torch.export + onnxscript), so these are marked slow."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from frontierkit import models
from frontierkit.serve.onnx_export import export_model, ort_greedy, past_names, session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llm_onnx(tmp_path_factory):
    """A 1-layer GQA kit LLaMA saved through the registry and exported with its KV cache."""
    from frontierkit.llm.model import Transformer
    tmp = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    models.save(Transformer.from_name("tiny-llama", n_layers=1, init_std=0.1).eval(), tmp / "llm")
    return export_model(tmp / "llm", tmp / "llm.onnx"), models.open_model(tmp / "llm", tags="lm").model


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet", "vit"])
def test_classifier_onnxruntime_matches_eager_1e5(name, tmp_path):
    """Oracle: eager PyTorch logits, atol 1e-5, at batch 1 and 64 (dynamic batch); dynamo exporter."""
    from frontierkit.vision.models import build_model
    torch.manual_seed(0)
    cfg = dict(name=name, in_channels=3, image_size=16, num_classes=4)
    models.save(build_model(cfg).eval(), tmp_path / "clf")
    rep = export_model(tmp_path / "clf", tmp_path / "clf.onnx")
    assert rep["exporter"] == "dynamo" and rep["kind"] == "vision" and rep["max_abs_diff"] <= 1e-5
    model = models.open_model(tmp_path / "clf", tags="classifier").model
    sess = session(tmp_path / "clf.onnx")
    for b in (1, 64):
        x = torch.randn(b, 3, 16, 16, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = model(x)
        got = torch.from_numpy(sess.run(["logits"], {"pixel_values": x.numpy()})[0])
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_llm_io_names_follow_optimum_with_dynamic_axes(llm_onnx):
    rep, model = llm_onnx
    ins, outs = past_names(model.cfg.n_layers)
    g = onnx.load(rep["onnx"], load_external_data=False).graph
    assert [i.name for i in g.input] == ["input_ids", "attention_mask", "position_ids", *ins]
    assert [o.name for o in g.output] == ["logits", *outs]
    past = g.input[3].type.tensor_type.shape.dim
    assert past[0].dim_param and past[2].dim_param and past[1].dim_value == model.cfg.n_kv_heads
    assert rep["exporter"] == "dynamo" and rep["max_abs_diff"] <= 1e-5


def test_llm_onnxruntime_logits_match_eager_1e5_at_other_batch_and_lengths(llm_onnx):
    """Oracle: eager full-sequence logits (atol 1e-5): batch 3, 7 tokens with an empty past, then 2 more
    tokens on the returned present (past length 7)."""
    rep, model = llm_onnx
    sess = session(rep["onnx"])
    cfg = model.cfg
    ids = torch.randint(0, cfg.vocab_size, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(ids)                                                       # (3, 9, V)
    ins, _ = past_names(cfg.n_layers)
    past = {n: np.zeros((3, cfg.n_kv_heads, 0, cfg.head_dim), np.float32) for n in ins}
    logits, *present = sess.run(None, {"input_ids": ids[:, :7].numpy(), "attention_mask": np.ones((3, 7), np.int64),
                                       "position_ids": np.arange(7)[None].repeat(3, 0), **past})
    logits2, *_ = sess.run(None, {"input_ids": ids[:, 7:].numpy(), "attention_mask": np.ones((3, 9), np.int64),
                                  "position_ids": np.arange(7, 9)[None].repeat(3, 0), **dict(zip(ins, present))})
    got = torch.from_numpy(np.concatenate([logits, logits2], axis=1))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_llm_greedy_through_onnxruntime_kv_cache_equals_llm_generate(llm_onnx):
    """Oracle: llm `generate` (greedy, exact tokens) vs decoding with present -> past_key_values in ORT."""
    from frontierkit.llm.generate import generate
    rep, model = llm_onnx
    prompt = [5, 17, 99, 3, 250, 42]
    ref = generate(model, torch.tensor([prompt]), 12)[0, len(prompt):].tolist()
    assert ort_greedy(session(rep["onnx"]), model.cfg, prompt, 12) == ref


def test_export_refuses_a_model_of_another_kind(tmp_path):
    from frontierkit.errors import CheckpointError
    with pytest.raises(CheckpointError, match="does not exist"):
        export_model(tmp_path / "missing", tmp_path / "x.onnx")
