"""The FNO paper's comparison baseline (Li et al. 2021, Sec. 5: "FCN"): a fully convolutional network of
about the FNO's size. Its kernels are fixed in grid cells, so on a finer grid they cover a smaller
physical region — why it does not transfer zero-shot to other resolutions while the FNO does."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

__all__ = ["CNN"]


class CNN(nn.Module):
    """``n_layers`` same-size convolutions (kernel k, GELU) between 1x1 lifting and projection, 1-D or 2-D."""

    def __init__(self, n_dim: int, width: int = 64, kernel: int = 5, n_layers: int = 6, in_channels: int = 1,
                 out_channels: int = 1, periodic: bool = False):
        super().__init__()
        Conv = nn.Conv1d if n_dim == 1 else nn.Conv2d
        mode = "circular" if periodic else "zeros"
        self.lift = Conv(in_channels, width, 1)
        self.convs = nn.ModuleList(Conv(width, width, kernel, padding=kernel // 2, padding_mode=mode)
                                   for _ in range(n_layers))
        self.proj = nn.Sequential(Conv(width, 2 * width, 1), nn.GELU(), Conv(2 * width, out_channels, 1))

    def forward(self, a):
        """a: (B, C_in, *S) -> (B, C_out, *S)."""
        v = self.lift(a)                        # (B, W, *S)
        for conv in self.convs:
            v = v + F.gelu(conv(v))             # residual conv block, (B, W, *S)
        return self.proj(v)                     # (B, C_out, *S)
