"""Autoregressive decoding with a pre-allocated KV cache (one forward per new token after the
prompt): greedy, temperature sampling, top-k (Fan et al. 2018), nucleus/top-p (Holtzman et al.
2020), repetition penalty (Keskar et al. 2019, CTRL eq. 1), stop tokens, left-padded batches
and token streaming. Logit processing follows the order of HF ``generate``:
repetition penalty -> temperature -> top-k -> top-p.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from ..nn import prompt_positions
from .model import Transformer


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL eq. (1): divide positive logits of already-seen tokens by ``penalty``, multiply negative ones."""
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)                                # (B, V)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits (ties at the k-th value kept), -inf elsewhere."""
    kth = torch.topk(logits, min(k, logits.shape[-1])).values[..., -1:]       # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of tokens whose probability mass reaches p (Holtzman et al. §3.1)."""
    sorted_logits, order = torch.sort(logits, descending=False)                # (B, V) ascending
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop_sorted = cum <= (1 - p)
    drop_sorted[..., -1] = False                                               # keep at least one token
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits: torch.Tensor, seen: torch.Tensor, *, temperature: float, top_k: int | None,
               top_p: float | None, repetition_penalty: float, generator: torch.Generator | None) -> torch.Tensor:
    """(B, V) logits of the last position -> (B,) chosen token ids."""
    if repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, seen, repetition_penalty)
    if temperature <= 0.0:
        return logits.argmax(-1)                                               # greedy
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(-1)                                                 # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def stream(model: Transformer, input_ids: torch.Tensor, max_new_tokens: int, *,
           attention_mask: torch.Tensor | None = None, temperature: float = 0.0, top_k: int | None = None,
           top_p: float | None = None, repetition_penalty: float = 1.0, stop_tokens: Sequence[int] = (),
           pad_id: int = 0, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield the (B,) next tokens one step at a time; rows that hit a stop token then yield ``pad_id``.

    input_ids (B, T) left-padded, attention_mask (B, T) 1 on real tokens."""
    model.eval()
    b, t = input_ids.shape
    device = input_ids.device
    mask = torch.ones(b, t, dtype=torch.bool, device=device) if attention_mask is None else attention_mask.bool()
    positions = prompt_positions(mask)                                         # (B, T)
    cache = model.new_cache(b, t + max_new_tokens)
    seen = torch.zeros(b, model.cfg.vocab_size, dtype=torch.bool, device=device)
    seen.scatter_(1, input_ids.masked_fill(~mask, 0), mask)                    # tokens in the prompts
    stops = torch.tensor(list(stop_tokens), dtype=torch.long, device=device)
    running = torch.ones(b, dtype=torch.bool, device=device)
    logits = model(input_ids, positions, mask, cache)[:, -1]                   # (B, V)
    pos = positions[:, -1:]                                                    # (B, 1)
    track_seen = repetition_penalty != 1.0
    for step in range(max_new_tokens):
        tok = next_token(logits.float(), seen, temperature=temperature, top_k=top_k, top_p=top_p,
                         repetition_penalty=repetition_penalty, generator=generator)
        tok = torch.where(running, tok, torch.full_like(tok, pad_id))          # (B,)
        yield tok
        if track_seen:
            seen[torch.arange(b, device=device), tok] = True
        if step == max_new_tokens - 1:
            return
        if stops.numel():
            running &= ~torch.isin(tok, stops)
            if not bool(running.any()):
                return
        pos = pos + 1
        logits = model(tok[:, None], pos, None, cache)[:, -1]                  # (B, V)


def generate(model: Transformer, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, **kwargs) -> torch.Tensor:
    """Prompt + up to ``max_new_tokens`` new ids, (B, T + n); stops early when every row has stopped."""
    new = list(stream(model, input_ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                      **kwargs))
    if not new:
        return input_ids
    return torch.cat([input_ids, torch.stack(new, dim=1)], dim=1)              # (B, T + n)
