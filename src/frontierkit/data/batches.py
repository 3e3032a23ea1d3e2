"""Deterministic batch sources: micro-batch ``i`` is a pure function of (seed, i).

Because a batch depends only on its index, the data position in a checkpoint is just the step,
and a resumed run sees exactly the batches an uninterrupted run would. ``rank``/``world`` give
each data-parallel rank its contiguous shard of the same global micro-batch.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch

from ..errors import DataError


class BatchSource(Protocol):
    units: str  # "samples" or "tokens", for throughput

    def batch(self, i: int, rank: int = 0, world: int = 1) -> Any: ...
    def count(self, batch: Any) -> int: ...


def _shard(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    if x.shape[0] % world:
        raise DataError(f"a batch of {x.shape[0]} rows does not split evenly over {world} ranks; "
                        f"set train.batch_size to a multiple of the world size")
    n = x.shape[0] // world
    return x[rank * n:(rank + 1) * n]


class TensorBatches:
    """Shuffled epochs over aligned tensors (e.g. images, labels); drops the ragged tail."""

    units = "samples"

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0):
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise DataError("all tensors must have the same number of rows")
        if batch_size > n:
            raise DataError(f"train.batch_size={batch_size} exceeds the {n} samples available; use a smaller batch")
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed
        self.per_epoch = n // batch_size
        self._perm: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.tensors[0].shape[0], generator=g))
        return self._perm[1]

    def batch(self, i: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, ...]:
        epoch, j = divmod(i, self.per_epoch)
        idx = self._permutation(epoch)[j * self.batch_size:(j + 1) * self.batch_size]
        return tuple(_shard(t[idx], rank, world) for t in self.tensors)

    def count(self, batch: tuple[torch.Tensor, ...]) -> int:
        return batch[0].shape[0]


class TokenBatches:
    """Random windows of a 1-D token stream: (x, y) with y = x shifted by one, both (B, T)."""

    units = "tokens"

    def __init__(self, tokens: torch.Tensor, *, batch_size: int, seq_len: int, seed: int = 0):
        if tokens.ndim != 1 or tokens.numel() <= seq_len + 1:
            raise DataError(f"the token stream has {tokens.numel()} tokens but data.seq_len={seq_len} needs more "
                            f"than {seq_len + 1}; use more text or a shorter data.seq_len")
        self.tokens, self.batch_size, self.seq_len, self.seed = tokens.long(), batch_size, seq_len, seed

    def batch(self, i: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        starts = torch.randint(0, self.tokens.numel() - self.seq_len - 1, (self.batch_size,), generator=g)
        offsets = torch.arange(self.seq_len + 1)
        window = self.tokens[starts[:, None] + offsets]          # (B, T+1)
        window = _shard(window, rank, world)
        return window[:, :-1], window[:, 1:]

    def count(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return batch[0].numel()
