"""KV-cache decoding and sampling: cached step-by-step logits equal the uncached forward (tol 1e-5);
logit processors equal transformers' (oracle: RepetitionPenaltyLogitsProcessor, TopKLogitsWarper,
TopPLogitsWarper; exact); stop tokens, streaming, seeded sampling."""
from __future__ import annotations

import pytest
import torch

from frontierkit.config import ConfigError
from frontierkit.llm import Transformer, TransformerConfig, config_from_name, generate, stream
from frontierkit.llm.generate import apply_repetition_penalty, top_k_filter, top_p_filter


def _model(name: str, **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer.from_name(name, **kw).eval()


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-mistral", "tiny-gpt2", "tiny-qwen2"])
def test_cached_decode_logits_equal_full_forward(name):
    """Invariant: prefill 10 + 30 one-token cached steps == one uncached forward of 40 tokens (1e-5);
    tiny-mistral's window (16) makes the rolling cache wrap."""
    model = _model(name)
    x = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(2, 40)
        steps = [model(x[:, :10], cache=cache)]
        steps += [model(x[:, i:i + 1], cache=cache) for i in range(10, 40)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


def test_left_padded_batch_rows_equal_unpadded_single_rows():
    """Invariant: each row of a left-padded batch generates what it generates alone (greedy)."""
    model = _model("tiny-mistral")
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 256, (n,), generator=g) for n in (5, 12, 20)]
    batch = torch.zeros(3, 20, dtype=torch.long)
    mask = torch.zeros(3, 20, dtype=torch.long)
    for i, p in enumerate(prompts):
        batch[i, 20 - len(p):], mask[i, 20 - len(p):] = p, 1
    out = generate(model, batch, 12, attention_mask=mask)
    for i, p in enumerate(prompts):
        alone = generate(model, p[None], 12)
        assert torch.equal(out[i, 20:], alone[0, len(p):])


def test_logit_processors_match_transformers():
    """Oracle: transformers' repetition-penalty / top-k / top-p processors, exact equality."""
    tf = pytest.importorskip("transformers")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g)
    ids = torch.randint(0, 50, (4, 7), generator=g)
    seen = torch.zeros(4, 50, dtype=torch.bool).scatter_(1, ids, True)
    ref = tf.RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone())
    assert torch.equal(apply_repetition_penalty(logits, seen, 1.3), ref)
    assert torch.equal(top_k_filter(logits, 5), tf.TopKLogitsWarper(5)(ids, logits.clone()))
    assert torch.equal(top_p_filter(logits, 0.8), tf.TopPLogitsWarper(0.8)(ids, logits.clone()))


def test_stop_token_ends_row_and_pads_the_rest():
    model = _model("tiny-llama")
    x = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(2))
    free = generate(model, x, 10)
    stop = int(free[0, 6 + 3])
    first = int((free[0, 6:] == stop).nonzero()[0])
    out = generate(model, x, 10, stop_tokens=[stop])
    assert out.shape[1] == 6 + first + 1 and int(out[0, -1]) == stop
    batch = torch.cat([x, torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(9))])
    both = generate(model, batch, 10, stop_tokens=[stop], pad_id=255)
    row0 = both[0, 6:]
    assert torch.equal(row0[:first + 1], free[0, 6:7 + first]) and bool((row0[first + 1:] == 255).all())


def test_streaming_yields_the_generated_tokens_in_order():
    model = _model("tiny-qwen2")
    x = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(3))
    streamed = torch.stack(list(stream(model, x, 8)), 1)
    assert torch.equal(streamed, generate(model, x, 8)[:, 5:])


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    model = _model("tiny-llama")
    x = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(4))
    kw = dict(temperature=0.9, top_p=0.9, repetition_penalty=1.2)
    a = generate(model, x, 12, generator=torch.Generator().manual_seed(7), **kw)
    b = generate(model, x, 12, generator=torch.Generator().manual_seed(7), **kw)
    assert torch.equal(a, b)
    k1 = generate(model, x, 12, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(7))
    assert torch.equal(k1, generate(model, x, 12))


def test_presets_have_published_sizes():
    """gpt2 preset has GPT-2 small's 124,439,808 parameters; llama3-8b has GQA 32/8 heads."""
    assert Transformer.from_name("gpt2").num_params() == 124_439_808
    cfg = config_from_name("llama3-8b")
    assert (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.d_ff) == (32, 8, 128, 14336)
    assert config_from_name("mistral-7b").sliding_window == 4096
    with pytest.raises(ConfigError, match="unknown"):
        config_from_name("gpt5")


def test_config_rejects_impossible_head_counts():
    with pytest.raises(ConfigError, match="model.n_kv_heads"):
        TransformerConfig(n_heads=8, n_kv_heads=3)
    with pytest.raises(ConfigError, match="model.d_model"):
        TransformerConfig(n_heads=3, d_model=64)
