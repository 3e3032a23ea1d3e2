"""Continuous batching (Yu et al. 2022, "Orca: A Distributed Serving System for Transformer-Based
Generative Models", §3: iteration-level scheduling) over a paged KV cache (Kwon et al. 2023, vLLM).

Every engine step: drop finished and cancelled sequences (their blocks return to the pool), admit
waiting ones while the batch and the pool allow (one batched prefill over their prompts), then run
one batched decode forward over every running sequence, whatever its length. Blocks are allocated
on demand; when the pool runs dry the newest sequence is preempted and later recomputed (vLLM §4.5,
"recomputation"). The waiting queue is bounded: ``submit`` raises ``QueueFull`` (HTTP 429). A step that
raises (a model error, an out-of-memory) fails the sequences of that step with ``finish_reason="error"``
and the engine goes on serving the others; ``stats`` counts what happened to every request.

Sampling per sequence: greedy (temperature 0), temperature and nucleus/top-p (Holtzman et al. 2020),
a seeded generator per sequence, and the log-probabilities of the raw logits.
"""
from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .paged_kv import BlockPool, BlockTable, OutOfBlocks, PagedBatch


class QueueFull(RuntimeError):
    """The waiting queue is full: back-pressure (the server answers 429)."""


@dataclass
class SamplingParams:
    max_tokens: int = 16
    """new tokens at most"""
    temperature: float = 1.0
    """0: greedy"""
    top_p: float = 1.0
    """nucleus mass (1: off)"""
    seed: int | None = None
    """seed of this sequence's generator (None: nondeterministic)"""
    stop_token_ids: tuple[int, ...] = ()
    """tokens that end the sequence (finish_reason "stop")"""
    top_logprobs: int = 0
    """how many most likely alternatives to report with each token's log-probability"""


@dataclass
class Step:
    """One generated token with its log-probability and the top alternatives [(id, logprob)]."""
    token: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass(eq=False)
class Sequence:
    """A request's state in the engine. ``on_token(seq, step) -> bool`` (True: stop here, e.g. a stop
    string) and ``on_finish(seq)`` are called from the engine thread."""
    prompt: list[int]
    params: SamplingParams
    on_token: Callable[["Sequence", Step], bool] = lambda s, st: False
    on_finish: Callable[["Sequence"], None] = lambda s: None
    id: int = field(default_factory=itertools.count().__next__)
    out: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    """stop / length / error (None while it runs)"""
    error: str = ""
    """what went wrong when finish_reason is 'error'"""
    cancelled: bool = False
    table: BlockTable = field(default_factory=lambda: BlockTable([]))
    generator: torch.Generator | None = None
    arrival: float = field(default_factory=time.perf_counter)
    first_token_time: float | None = None
    finish_time: float | None = None

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.out

    def cancel(self) -> None:
        """Drop this sequence at the next step (client disconnected)."""
        self.cancelled = True


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> Step:
    """(V,) raw logits -> the next token: argmax, or a draw from softmax(logits / T) kept to the top-p
    nucleus (Holtzman et al. 2020 §3.1); log p from log_softmax(logits)."""
    logp = logits.float().log_softmax(-1)                                      # (V,)
    if params.temperature <= 0.0:
        tok = int(logits.argmax())
    else:
        z = logits.float() / params.temperature                                # (V,)
        if params.top_p < 1.0:
            sorted_z, order = torch.sort(z)                                    # ascending
            drop = sorted_z.softmax(-1).cumsum(-1) <= 1 - params.top_p
            drop[-1] = False
            z = z.masked_fill(drop.scatter(0, order, drop), float("-inf"))
        tok = int(torch.multinomial(z.softmax(-1), 1, generator=generator))
    top: list[tuple[int, float]] = []
    if params.top_logprobs:
        v, i = logp.topk(min(params.top_logprobs, logp.numel()))
        top = list(zip(i.tolist(), v.tolist()))
    return Step(tok, float(logp[tok]), top)


class Engine:
    """Iteration-level scheduler over a decoder ``model(ids, positions, valid, cache)`` -> logits whose
    layers take ``frontierkit.nn.LayerCache`` objects (the kit Transformer).

    ``mode="continuous"`` (Orca), ``"static"`` (admit a new batch only when the previous one finished,
    the classic request-level batching) or ``"single"`` (one request at a time)."""

    def __init__(self, model: nn.Module, *, max_batch: int = 32, max_waiting: int = 256, block_size: int = 16,
                 num_blocks: int | None = None, mode: str = "continuous", max_len: int | None = None):
        cfg = model.cfg
        self.model = model.eval()
        self.max_len = max_len or cfg.max_seq_len
        self.max_batch = 1 if mode == "single" else max_batch
        self.max_waiting, self.mode = max_waiting, mode
        blocks_per_seq = -(-self.max_len // block_size)
        p = next(model.parameters())
        self.pool = BlockPool(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim,
                              num_blocks or self.max_batch * blocks_per_seq, block_size, p.dtype, p.device)
        self.window = cfg.sliding_window
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.lock = threading.Condition()
        self.steps = 0
        self.stats = {"submitted": 0, "rejected": 0, "finished": 0, "cancelled": 0, "failed": 0, "preempted": 0}
        """requests submitted, refused (queue full), finished, cancelled (client gone), failed, preemptions"""
        self._thread: threading.Thread | None = None
        self._stop = False

    # -- client side ---------------------------------------------------------------------------------
    def submit(self, seq: Sequence) -> Sequence:
        """Queue a sequence; raises QueueFull when ``max_waiting`` are already waiting."""
        if len(seq.prompt) + 1 > self.max_len:
            raise ValueError(f"prompt has {len(seq.prompt)} tokens; the context holds {self.max_len}")
        if seq.generator is None and seq.params.seed is not None:
            seq.generator = torch.Generator(device=self.pool.k.device).manual_seed(seq.params.seed)
        with self.lock:
            if len(self.waiting) >= self.max_waiting:
                self.stats["rejected"] += 1
                raise QueueFull(f"{len(self.waiting)} requests are already waiting (--max-waiting {self.max_waiting})")
            self.stats["submitted"] += 1
            self.waiting.append(seq)
            self.lock.notify()
        return seq

    def start(self) -> "Engine":
        """Run ``step`` in a background thread until ``close``."""
        self._thread = threading.Thread(target=self._loop, name="frontier-serve-engine", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        with self.lock:
            self._stop = True
            self.lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self._stop and not self.waiting and not self.running:
                    self.lock.wait()
                if self._stop:
                    return
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - one bad step must not stop the server
                self.fail_running(e)

    def fail_running(self, e: Exception) -> None:
        """End every running sequence with ``finish_reason="error"`` (their blocks return to the pool); the
        waiting ones are admitted at the next step."""
        for s in self.running:
            if s.finish_reason is None and not s.cancelled:
                s.finish_reason, s.error = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                s.finish_time = time.perf_counter()
                self.stats["failed"] += 1
                try:
                    s.on_finish(s)
                except Exception:  # noqa: BLE001
                    pass
        self._retire()

    def run_until_done(self) -> None:
        """Step until nothing waits or runs (offline use: benchmarks, tests)."""
        while self.waiting or self.running:
            self.step()

    # -- engine side ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> None:
        """One Orca iteration: retire, admit + prefill, decode."""
        self.steps += 1
        self._retire()
        fresh = self._admit()
        if fresh:
            self._forward(fresh, prefill=True)
        old = [s for s in self.running if s not in fresh and s.finish_reason is None and not s.cancelled]
        old = self._reserve_decode(old)
        if old:
            self._forward(old, prefill=False)
        self._retire()

    def _retire(self) -> None:
        keep = []
        for s in self.running:
            if s.finish_reason is None and not s.cancelled:
                keep.append(s)
                continue
            if s.finish_reason is None:
                self.stats["cancelled"] += 1
            self.pool.release(s.table.blocks)
            s.table.length = 0
        self.running = keep
        with self.lock:
            dropped = [s for s in self.waiting if s.cancelled]
            for s in dropped:
                self.waiting.remove(s)
            self.stats["cancelled"] += len(dropped)

    def _admit(self) -> list[Sequence]:
        """Waiting sequences that fit in the batch and the pool (static mode: only into an empty batch)."""
        if self.mode == "static" and self.running:
            return []
        fresh: list[Sequence] = []
        with self.lock:
            while self.waiting and len(self.running) < self.max_batch:
                seq = self.waiting[0]
                need = -(-(len(seq.tokens) + 1) // self.pool.block_size)
                if need > len(self.pool.free):
                    break
                self.waiting.popleft()
                seq.table.reserve(self.pool, len(seq.tokens))
                self.running.append(seq)
                fresh.append(seq)
        return fresh

    def _reserve_decode(self, seqs: list[Sequence]) -> list[Sequence]:
        """A block for each sequence's next token; preempt the newest sequences while the pool is dry."""
        out = list(seqs)
        i = 0
        while i < len(out):
            s = out[i]
            try:
                s.table.reserve(self.pool, s.table.length + 1)
                i += 1
            except OutOfBlocks:
                victim = out.pop()                     # newest: recomputed later from its tokens
                self.stats["preempted"] += 1
                self.pool.release(victim.table.blocks)
                victim.table.length = 0
                self.running.remove(victim)
                with self.lock:
                    self.waiting.appendleft(victim)
                if victim is s:
                    continue
        return out

    def _forward(self, seqs: list[Sequence], prefill: bool) -> None:
        """One batched forward: whole token lists (prefill) or each sequence's last token (decode)."""
        feeds = [s.tokens[s.table.length:] for s in seqs]                      # not yet in the cache
        new = [len(f) for f in feeds]
        t = max(new)
        dev = self.pool.k.device
        ids = torch.tensor([f + [0] * (t - len(f)) for f in feeds], device=dev)  # (B, t) right padded
        batch = PagedBatch(self.pool, [s.table for s in seqs], new, self.window)
        logits = self.model(ids, batch.positions, batch.write_valid, batch)     # (B, t, V)
        last = logits[torch.arange(len(seqs), device=dev), torch.tensor(new, device=dev) - 1]   # (B, V)
        now = time.perf_counter()
        for s, n, row in zip(seqs, new, last):
            s.table.length += n
            self._emit(s, sample(row, s.params, s.generator), now)

    def _emit(self, s: Sequence, step: Step, now: float) -> None:
        s.out.append(step.token)
        s.first_token_time = s.first_token_time or now
        stop = s.on_token(s, step)
        if step.token in s.params.stop_token_ids or stop:
            s.finish_reason = "stop"
        elif len(s.out) >= s.params.max_tokens or len(s.tokens) >= self.max_len:
            s.finish_reason = "length"
        if s.finish_reason is not None:
            s.finish_time = now
            self.stats["finished"] += 1
            s.on_finish(s)

    @property
    def kv_bytes_contiguous(self) -> int:
        """What a contiguous max-length cache for ``max_batch`` sequences would hold."""
        return self.max_batch * math.ceil(self.max_len / self.pool.block_size) * self.pool.bytes_per_block
