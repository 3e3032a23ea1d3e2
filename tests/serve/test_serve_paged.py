"""Paged KV cache and continuous batching (PagedAttention, Kwon et al. 2023; Orca, Yu et al. 2022).

Oracles: the kit's contiguous KV cache (logits, atol 1e-5), the llm area's `generate` (greedy tokens,
exact) and transformers `generate` on a Hugging Face folder loaded through the registry (exact)."""
from __future__ import annotations

import pytest
import torch

from frontierkit.llm.generate import generate
from frontierkit.llm.model import Transformer
from frontierkit.serve.paged_kv import BlockPool, BlockTable, PagedBatch
from frontierkit.serve.scheduler import Engine, QueueFull, SamplingParams, Sequence


def _model(name: str = "tiny-llama", **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer.from_name(name, **kw).eval()


def _prompts(lengths, vocab=256, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, vocab, (n,), generator=g).tolist() for n in lengths]


def _greedy(engine: Engine, prompts, max_tokens=12):
    seqs = [engine.submit(Sequence(p, SamplingParams(max_tokens=max_tokens, temperature=0))) for p in prompts]
    engine.run_until_done()
    return [s.out for s in seqs]


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-mistral"])
def test_paged_logits_equal_contiguous_cache_1e5(name):
    """Oracle: the contiguous KVCache (llm `new_cache`), same prompts one by one; atol 1e-5.
    One batched prefill over rows of lengths 3/17/9 (right padded), then 4 batched decode steps."""
    model = _model(name)
    cfg = model.cfg
    prompts = _prompts([3, 17, 9])
    pool = BlockPool(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, num_blocks=24, block_size=4)
    tables = [BlockTable([]) for _ in prompts]
    with torch.no_grad():
        refs = []
        for p in prompts:
            cache = model.new_cache(1, 40)
            rows = [model(torch.tensor([p]), cache=cache)[0, -1]]
            for t in range(4):
                rows.append(model(torch.tensor([[7 + t]]), cache=cache)[0, -1])
            refs.append(torch.stack(rows))                                     # (5, V)
        feeds = [list(p) for p in prompts]
        got = [[] for _ in prompts]
        for step in range(5):
            for tb, f in zip(tables, feeds):
                tb.reserve(pool, tb.length + len(f))
            batch = PagedBatch(pool, tables, [len(f) for f in feeds], cfg.sliding_window)
            t = max(len(f) for f in feeds)
            ids = torch.tensor([f + [0] * (t - len(f)) for f in feeds])
            logits = model(ids, batch.positions, batch.write_valid, batch)
            for i, (tb, f) in enumerate(zip(tables, feeds)):
                got[i].append(logits[i, len(f) - 1])
                tb.length += len(f)
            feeds = [[7 + step] for _ in prompts]
    for ref, g in zip(refs, got):
        torch.testing.assert_close(torch.stack(g), ref, atol=1e-5, rtol=0)


def test_engine_greedy_equals_llm_generate_with_preemption():
    """Oracle: llm `generate` one prompt at a time (exact tokens). The pool (12 blocks of 4) is too
    small for 7 sequences, so sequences are preempted and recomputed; all blocks return at the end."""
    model = _model(init_std=0.1)
    prompts = _prompts([5, 9, 3, 17, 30, 2, 11])
    ref = [generate(model, torch.tensor([p]), 12)[0, len(p):].tolist() for p in prompts]
    engine = Engine(model, max_batch=4, block_size=4, num_blocks=12)
    assert _greedy(engine, prompts) == ref
    assert engine.pool.used == 0 and engine.pool.peak_used == 12


@pytest.mark.parametrize("mode", ["single", "static", "continuous"])
def test_batching_modes_give_identical_greedy_tokens(mode):
    """Oracle: llm `generate` (exact); one-at-a-time, static and continuous batching agree."""
    model = _model(init_std=0.1)
    prompts = _prompts([4, 12, 7, 20, 1])
    ref = [generate(model, torch.tensor([p]), 8)[0, len(p):].tolist() for p in prompts]
    assert _greedy(Engine(model, max_batch=3, block_size=8, mode=mode), prompts, 8) == ref


def test_continuous_batching_admits_while_others_decode_and_allocates_on_demand():
    """A sequence submitted mid-flight joins the running batch at the next step (Orca's iteration-level
    scheduling), and blocks follow the tokens held: peak KV bytes < the contiguous max-length cache."""
    model = _model(init_std=0.1)
    engine = Engine(model, max_batch=8, block_size=4)
    a = engine.submit(Sequence(_prompts([6])[0], SamplingParams(max_tokens=10, temperature=0)))
    engine.step()
    engine.step()
    b = engine.submit(Sequence(_prompts([5], seed=2)[0], SamplingParams(max_tokens=3, temperature=0)))
    engine.step()
    assert a in engine.running and b in engine.running and len(a.out) == 3 and len(b.out) == 1
    engine.run_until_done()
    assert b.finish_time < a.finish_time and engine.pool.used == 0
    assert engine.pool.peak_bytes < engine.kv_bytes_contiguous / 10


def test_bounded_queue_raises_queue_full_and_cancel_frees_blocks():
    model = _model()
    engine = Engine(model, max_batch=2, max_waiting=2, block_size=4)
    seqs = [engine.submit(Sequence([1, 2, 3], SamplingParams(max_tokens=50, temperature=0))) for _ in range(2)]
    with pytest.raises(QueueFull):
        engine.submit(Sequence([1, 2], SamplingParams()))
    engine.step()
    assert engine.pool.used == 2
    seqs[0].cancel()
    engine.step()
    assert seqs[0] not in engine.running and engine.pool.used == 1 and seqs[0].finish_reason is None
    with pytest.raises(ValueError, match="context"):
        engine.submit(Sequence(list(range(200)), SamplingParams()))


def test_seeded_sampling_is_reproducible_and_matches_llm_generate_top_p():
    """Oracle: llm `generate` with the same seed, temperature 0.8, top-p 0.9 (exact tokens, batch 1)."""
    model = _model()
    p = _prompts([6])[0]
    ref = generate(model, torch.tensor([p]), 10, temperature=0.8, top_p=0.9,
                   generator=torch.Generator().manual_seed(5))[0, 6:].tolist()
    outs = []
    for _ in range(2):
        engine = Engine(model, max_batch=4, block_size=4)
        s = engine.submit(Sequence(p, SamplingParams(max_tokens=10, temperature=0.8, top_p=0.9, seed=5)))
        engine.run_until_done()
        outs.append(s.out)
    assert outs[0] == outs[1] == ref


@pytest.mark.slow
def test_hf_llama_folder_through_registry_matches_transformers_generate(tmp_path):
    """Oracle: transformers `generate` (greedy, exact tokens) on a tiny random LlamaForCausalLM folder;
    the engine gets the model through `frontierkit.models.open_model` (HF folders convert on load)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
    from hf_util import load_hf, save_hf_model

    from frontierkit import models
    path = save_hf_model("llama", tmp_path / "hf", initializer_range=0.1)
    hf = load_hf(path)
    model = models.open_model(path, tags="lm").model
    prompts = _prompts([5, 11, 3], vocab=128)
    with torch.no_grad():
        ref = [hf.generate(torch.tensor([p]), max_new_tokens=10, do_sample=False, eos_token_id=None,
                           pad_token_id=0)[0, len(p):].tolist() for p in prompts]
    assert _greedy(Engine(model, max_batch=4, block_size=4), prompts, 10) == ref
