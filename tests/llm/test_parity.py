"""Parity with transformers (the oracle; fp32, tiny random configs saved with save_pretrained).

Tolerance: logits max-abs difference <= 1e-5, both directions (HF -> ours via from_hf, ours -> HF via
to_hf + from_pretrained); greedy generation token-identical to transformers' generate."""
from __future__ import annotations

import json

import pytest
import torch

from frontierkit.errors import CheckpointError
from frontierkit.llm import from_hf, generate, to_hf
from frontierkit.llm.convert import read_rope

from hf_util import VOCAB, load_hf, save_hf_model

pytest.importorskip("transformers")
TOL = 1e-5

FAMILIES = {
    "llama-mha": ("llama", dict(num_key_value_heads=4)),
    "llama-gqa": ("llama", dict(num_key_value_heads=2)),
    "llama-mqa": ("llama", dict(num_key_value_heads=1, attention_bias=True)),
    "mistral-sliding-window": ("mistral", dict(sliding_window=8)),
    "qwen2": ("qwen2", dict(tie_word_embeddings=True)),
    "gpt2": ("gpt2", {}),
}
ROPE = {
    "linear": dict(rope_type="linear", factor=2.0),
    "dynamic": dict(rope_type="dynamic", factor=2.0),
    "yarn": dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16),
    "llama3": dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=16),
}


def _ids(b: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def _both_directions(tmp_path, family: str, kw: dict, t: int) -> None:
    src = save_hf_model(family, tmp_path / "hf", **kw)
    hf, ours = load_hf(src), from_hf(src)
    x = _ids(2, t)
    with torch.no_grad():
        ref, got = hf(x).logits, ours(x)
        back = load_hf(to_hf(ours, tmp_path / "ours")).eval()(x).logits
    assert (got - ref).abs().max().item() <= TOL, "HF -> ours"
    assert (back - got).abs().max().item() <= TOL, "ours -> HF"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_logits_match_transformers_both_directions(tmp_path, name):
    """Oracle transformers, |logits| diff <= 1e-5 both ways; sliding window: 40 tokens > window 8."""
    family, kw = FAMILIES[name]
    _both_directions(tmp_path, family, kw, t=40)


@pytest.mark.parametrize("kind", list(ROPE))
def test_rope_scaling_logits_match_transformers_both_directions(tmp_path, kind):
    """Oracle transformers rope_parameters, |logits| diff <= 1e-5; 48 tokens > max_position_embeddings=32."""
    kw = dict(max_position_embeddings=32, rope_parameters={**ROPE[kind], "rope_theta": 10000.0})
    _both_directions(tmp_path, "llama", kw, t=48)


@pytest.mark.parametrize("name", ["llama-gqa", "mistral-sliding-window", "qwen2", "gpt2"])
def test_greedy_generation_equals_transformers_generate(tmp_path, name):
    """Oracle transformers generate(do_sample=False): identical tokens (mistral crosses its window of 8)."""
    family, kw = FAMILIES[name]
    src = save_hf_model(family, tmp_path, **kw)
    hf, ours = load_hf(src), from_hf(src)
    x = _ids(1, 12)
    ref = hf.generate(x, max_new_tokens=30, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(generate(ours, x, 30), ref)


def test_greedy_generation_dynamic_ntk_equals_transformers_generate(tmp_path):
    """Oracle transformers generate; dynamic NTK past max_position_embeddings=16 while decoding."""
    kw = dict(max_position_embeddings=16, rope_parameters=dict(ROPE["dynamic"], rope_theta=10000.0))
    src = save_hf_model("llama", tmp_path, **kw)
    hf, ours = load_hf(src), from_hf(src)
    x = _ids(1, 10)
    ref = hf.generate(x, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(generate(ours, x, 20), ref)


@pytest.mark.parametrize("name", ["llama-gqa", "mistral-sliding-window"])
def test_left_padded_batch_greedy_equals_transformers_generate(tmp_path, name):
    """Oracle transformers generate with attention_mask on a left-padded batch of 3 prompt lengths."""
    family, kw = FAMILIES[name]
    src = save_hf_model(family, tmp_path, **kw)
    hf, ours = load_hf(src), from_hf(src)
    x = _ids(3, 14, seed=3)
    mask = torch.ones_like(x)
    mask[0, :5], mask[1, :9] = 0, 0
    x = x.masked_fill(mask == 0, 0)
    ref = hf.generate(x, attention_mask=mask, max_new_tokens=16, do_sample=False, pad_token_id=0,
                      eos_token_id=None)
    assert torch.equal(generate(ours, x, 16, attention_mask=mask), ref)


def test_llama_gradients_match_transformers(tmp_path):
    """Oracle transformers backward: grads of the LM loss w.r.t. every HF tensor within 1e-5."""
    src = save_hf_model("llama", tmp_path, num_key_value_heads=2)
    hf, ours = load_hf(src), from_hf(src)
    x = _ids(2, 24)
    hf(x, labels=x).loss.backward()
    logits = ours(x)[:, :-1]
    torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1)).backward()
    grads = {k: p.grad for k, p in ours.named_parameters()}
    from frontierkit.llm.convert import state_to_hf
    ours_hf = state_to_hf(grads, ours.cfg)
    for name, p in hf.named_parameters():
        assert (ours_hf[name] - p.grad).abs().max().item() <= TOL, name


def test_sharded_safetensors_index_roundtrip(tmp_path):
    """to_hf with max_shard_bytes writes model.safetensors.index.json; transformers and from_hf both
    load it to the same logits (<= 1e-5)."""
    src = save_hf_model("llama", tmp_path / "hf")
    ours = from_hf(src)
    out = to_hf(ours, tmp_path / "sharded", max_shard_bytes=20_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    x = _ids(1, 16)
    with torch.no_grad():
        assert (load_hf(out)(x).logits - ours(x)).abs().max().item() <= TOL
        assert (from_hf(out)(x) - ours(x)).abs().max().item() == 0.0


def test_rope_scaling_legacy_and_transformers5_keys_read_alike():
    """Older ``rope_scaling`` + ``rope_theta`` and transformers-5 ``rope_parameters`` give one RopeConfig."""
    old = {"rope_theta": 500000.0, "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    new = {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    assert read_rope(old) == read_rope(new)
    assert read_rope(new).type == "llama3" and read_rope({}).type == "none"


@pytest.mark.parametrize("config, match", [
    ({"model_type": "bert", "architectures": ["BertModel"]}, "model_type 'bert'"),
    ({"model_type": "llama", "hidden_size": 64}, "lacks required field"),
    ({"model_type": "llama", "vocab_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4,
      "num_key_value_heads": 3, "hidden_size": 64, "intermediate_size": 8, "max_position_embeddings": 8},
     "n_kv_heads"),
    ({"model_type": "llama", "rope_scaling": {"type": "longrope"}}, "RoPE type 'longrope'"),
])
def test_unsupported_or_malformed_config_names_what_is_supported(tmp_path, config, match):
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=match) as err:
        from_hf(tmp_path)
    assert "supported" in str(err.value) and "LlamaForCausalLM" in str(err.value)


def test_pickle_only_checkpoint_is_refused(tmp_path):
    src = save_hf_model("llama", tmp_path)
    (src / "model.safetensors").rename(src / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        from_hf(src)
