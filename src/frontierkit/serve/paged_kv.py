"""A paged KV cache (Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving
with PagedAttention", §4.2-4.3): keys/values live in a pool of fixed-size blocks shared by every
sequence; each sequence owns a *block table* (logical block i -> physical block id), and blocks are
allocated on demand as a sequence grows, so memory follows the tokens actually held instead of a
contiguous max-length buffer per sequence.

One batched forward runs over sequences of different lengths: the new tokens of each row (right
padded) are written to their slots, then every row gathers its keys through its block table and
attends with a causal + length mask. The model sees only ``frontierkit.nn.LayerCache`` objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nn import sdpa


class OutOfBlocks(RuntimeError):
    """The block pool has no free block left (the scheduler preempts a sequence and retries)."""


class BlockPool:
    """Physical KV blocks of every layer: k/v (L, num_blocks * block_size, Hkv, D), a free list of block ids.

    A block id names the same slots in every layer (PagedAttention §4.3: one block table per sequence)."""

    def __init__(self, n_layers: int, n_kv_heads: int, head_dim: int, num_blocks: int, block_size: int = 16,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.block_size, self.num_blocks = block_size, num_blocks
        shape = (n_layers, num_blocks * block_size, n_kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)                # (L, slots, Hkv, D)
        self.v = torch.zeros_like(self.k)
        self.free: list[int] = list(range(num_blocks - 1, -1, -1))
        self.peak_used = 0

    @property
    def used(self) -> int:
        return self.num_blocks - len(self.free)

    @property
    def bytes_per_block(self) -> int:
        return 2 * self.k[:, :self.block_size].numel() * self.k.element_size()

    @property
    def peak_bytes(self) -> int:
        """Most KV bytes ever held by allocated blocks (on-demand allocation's footprint)."""
        return self.peak_used * self.bytes_per_block

    def allocate(self) -> int:
        if not self.free:
            raise OutOfBlocks(f"all {self.num_blocks} KV blocks are in use")
        block = self.free.pop()
        self.peak_used = max(self.peak_used, self.used)
        return block

    def release(self, blocks: list[int]) -> None:
        self.free.extend(reversed(blocks))
        blocks.clear()


@dataclass
class BlockTable:
    """One sequence's logical -> physical block map and the number of tokens whose K/V are stored."""
    blocks: list[int]
    length: int = 0

    def reserve(self, pool: BlockPool, new_length: int) -> None:
        """Allocate blocks so ``new_length`` tokens fit (on demand, PagedAttention §4.2)."""
        need = -(-new_length // pool.block_size)
        while len(self.blocks) < need:
            self.blocks.append(pool.allocate())


class PagedBatch:
    """The per-step view of a batch of block tables: slots to write and slots to read, for every layer.

    ``lengths`` (B,) tokens already cached per row; ``new`` (B,) new tokens per row this step (right
    padded to t = max(new)). Blocks must already be reserved for lengths + new."""

    def __init__(self, pool: BlockPool, tables: list[BlockTable], new: list[int],
                 window: int | None = None):
        dev = pool.k.device
        bs = pool.block_size
        self.pool, self.window = pool, window
        lengths = torch.tensor([tb.length for tb in tables], device=dev)        # (B,)
        n_new = torch.tensor(new, device=dev)                                  # (B,)
        total = lengths + n_new                                                # (B,)
        t, s = max(new), int(total.max())
        width = max(len(tb.blocks) for tb in tables)
        table = torch.tensor([tb.blocks + [0] * (width - len(tb.blocks)) for tb in tables], device=dev)  # (B, nb)
        kpos = torch.arange(s, device=dev)                                     # (S,)
        self.read_slots = table[:, kpos // bs] * bs + kpos % bs                # (B, S)
        qpos = lengths[:, None] + torch.arange(t, device=dev)                  # (B, t) absolute positions
        self.positions = qpos
        self.write_valid = torch.arange(t, device=dev)[None, :] < n_new[:, None]   # (B, t) real new tokens
        wpos = qpos.clamp(max=s - 1)
        self.write_slots = table.gather(1, wpos // bs) * bs + wpos % bs       # (B, t)
        mask = (kpos[None, None, :] <= qpos[:, :, None]) & (kpos[None, None, :] < total[:, None, None])  # (B, t, S)
        if window is not None:
            mask &= qpos[:, :, None] - kpos[None, None, :] < window
        mask |= ~self.write_valid[:, :, None] & (kpos == 0)                    # padding queries: no empty row
        self.mask = mask[:, None]                                              # (B, 1, t, S)
        self.layers = [PagedLayer(self, i) for i in range(pool.k.shape[0])]

    def __getitem__(self, i: int) -> "PagedLayer":
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)


class PagedLayer:
    """``frontierkit.nn.LayerCache`` over one layer of a ``PagedBatch``."""

    def __init__(self, batch: PagedBatch, layer: int):
        self.batch, self.layer = batch, layer

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
               window: int | None) -> torch.Tensor:
        """Write the new k/v (B, Hkv, t, D) into their blocks, gather each row's keys through its block
        table and attend: softmax(q K^T / sqrt(d) + causal/length mask) V (PagedAttention §4.1)."""
        b = self.batch
        kc, vc = b.pool.k[self.layer], b.pool.v[self.layer]                   # (slots, Hkv, D)
        w = b.write_valid                                                      # (B, t)
        kc[b.write_slots[w]] = k.transpose(1, 2)[w]                            # (n_new, Hkv, D)
        vc[b.write_slots[w]] = v.transpose(1, 2)[w]
        k_all = kc[b.read_slots].transpose(1, 2)                               # (B, Hkv, S, D)
        v_all = vc[b.read_slots].transpose(1, 2)                               # (B, Hkv, S, D)
        return sdpa(q, k_all, v_all, b.mask)                                   # (B, H, t, D)
