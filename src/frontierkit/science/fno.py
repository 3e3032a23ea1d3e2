"""Fourier neural operator (Li et al. 2021, "Fourier Neural Operator for Parametric PDEs", ICLR).

One FNO layer is ``v' = sigma(W v + K v)`` with the spectral convolution (paper eq. 4-5)
``K v = irfft(R . rfft(v)[kept modes])``: transform, keep the lowest modes, multiply each kept
mode by a complex (in, out) matrix ``R_k``, zero the rest, transform back. ``W`` is a pointwise
(1x1) linear skip. A lifting MLP ``P`` maps the input function (plus a grid embedding, the
coordinates in [0, 1)) to ``hidden_channels``; a projection MLP ``Q`` maps back.

Conventions follow neuraloperator (``neuralop.models.FNO``) so weights copy both ways
(:func:`fno_from_neuralop`): ``n_modes[-1]`` counts modes of the full spectrum, so the last
(rfft) dimension keeps ``n_modes[-1] // 2 + 1`` non-negative frequencies; every other dimension
keeps ``n_modes[d]`` frequencies centred on 0 (``-(m // 2) .. m - m // 2 - 1``); the fft is
normalised ``"forward"`` (1/n on the forward transform). Inside each block a channel MLP with a
soft-gating skip follows the spectral layer (neuraloperator's default; ``use_channel_mlp=False``
with ``lifting_channel_ratio=0`` is the paper's plain layer stack).

Only the kept modes are used, so by default (``impl="auto"``) they are computed as matrix products with
truncated DFT matrices rather than full ``rfftn``/``irfftn``: the same linear map (tested equal to the
torch.fft path), far cheaper when few modes are kept and on grid sizes the FFT handles slowly (Darcy's
prime 43).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require

__all__ = ["FNO", "FNOConfig", "SpectralConv", "build_fno", "fno_from_neuralop"]


@dataclass(frozen=True, kw_only=True)
class FNOConfig:
    """An FNO's architecture (names as in neuraloperator's ``FNO``)."""
    n_modes: tuple[int, ...] = (16,)
    """modes kept per spatial dimension (the last one counts the full spectrum: n // 2 + 1 rfft modes)"""
    in_channels: int = 1
    """input function channels (the grid embedding adds one per dimension)"""
    out_channels: int = 1
    """output function channels"""
    hidden_channels: int = 32
    """width of the Fourier layers"""
    n_layers: int = 4
    """Fourier layers"""
    lifting_channel_ratio: float = 2.0
    """lifting MLP hidden width / hidden_channels (0: one linear layer)"""
    projection_channel_ratio: float = 2.0
    """projection MLP hidden width / hidden_channels"""
    use_channel_mlp: bool = True
    """a 2-layer channel MLP (with soft-gating skip) after each spectral layer"""
    channel_mlp_expansion: float = 0.5
    """channel MLP hidden width / hidden_channels"""
    positional_embedding: bool = True
    """append the grid coordinates in [0, 1) to the input"""
    fft_norm: str = "forward"
    """torch.fft normalisation: forward, backward or ortho"""

    def __post_init__(self) -> None:
        require(1 <= len(self.n_modes) <= 3 and all(m >= 1 for m in self.n_modes), "model.n_modes",
                self.n_modes, "1 to 3 positive mode counts (one per spatial dimension)")
        for name in ("in_channels", "out_channels", "hidden_channels", "n_layers"):
            require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "a positive integer")
        require(self.fft_norm in ("forward", "backward", "ortho"), "model.fft_norm", self.fft_norm,
                "forward, backward or ortho")

    @property
    def n_dim(self) -> int:
        return len(self.n_modes)


def kept_modes(n_modes: tuple[int, ...]) -> tuple[int, ...]:
    """Weight shape over modes: full-spectrum counts, the last (rfft) dimension halved (n // 2 + 1)."""
    return (*n_modes[:-1], n_modes[-1] // 2 + 1)


class SpectralConv(nn.Module):
    """``K v = irfftn(R . rfftn(v)|_modes)`` (Li et al. 2021, eq. 4-5) plus a per-channel bias."""

    def __init__(self, in_channels: int, out_channels: int, n_modes: tuple[int, ...], fft_norm: str = "forward",
                 impl: str = "auto"):
        super().__init__()
        self.n_modes, self.fft_norm = tuple(n_modes), fft_norm
        self.impl = impl   # "fft" (torch.fft), "dft" (truncated DFT matmuls) or "auto" (the cheaper, see _dft_is_cheaper)
        self.modes = kept_modes(self.n_modes)
        std = (2 / (in_channels + out_channels)) ** 0.5
        # complex R stored as (real, imag) pairs: (in, out, *modes, 2); mode axes of all but the last
        # dimension run over frequencies -(m//2) .. m - m//2 - 1 (fftshift order, as neuraloperator)
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels, *self.modes, 2) * std / math.sqrt(2))
        self.bias = nn.Parameter(std * torch.randn(out_channels, *(1,) * len(self.n_modes)))

    def _index(self, size: int, d: int) -> torch.Tensor:
        """Indices into an fft axis of ``size`` of the kept frequencies along dimension ``d`` (weight order)."""
        m = self.modes[d]
        if d == len(self.modes) - 1:                       # rfft axis: frequencies 0 .. m-1
            return torch.arange(m)
        return torch.arange(-(m // 2), m - m // 2) % size  # negative then non-negative frequencies

    def forward(self, x: torch.Tensor, output_shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """(B, C_in, *S) -> (B, C_out, *S_out); S_out = output_shape (super-resolution) or S."""
        S = tuple(x.shape[2:])
        S_out = tuple(output_shape) if output_shape is not None else S
        fft_in, fft_out = (*S[:-1], S[-1] // 2 + 1), (*S_out[:-1], S_out[-1] // 2 + 1)
        for d, m in enumerate(self.modes):
            if m > fft_in[d] or m > fft_out[d]:
                raise ValueError(f"resolution {S} -> {S_out} is too coarse for n_modes={self.n_modes}: "
                                 f"needs at least {m} frequencies along dimension {d}")
        use_fft = self.impl == "fft" or (self.impl == "auto" and not _dft_is_cheaper(S, S_out, self.modes))
        x_kept = self._rfft_kept(x) if use_fft else self._dft_kept(x)                       # (B, C_in, *modes)
        R = torch.view_as_complex(self.weight)                                               # (C_in, C_out, *modes)
        letters = "xyz"[:len(self.modes)]
        out_hat = torch.einsum(f"bi{letters},io{letters}->bo{letters}", x_kept, R)          # (B, C_out, *modes)
        y = self._irfft_kept(out_hat, S_out) if use_fft else self._idft_kept(out_hat, S_out)  # (B, C_out, *S_out)
        return y + self.bias

    def _rfft_kept(self, x: torch.Tensor) -> torch.Tensor:
        """The kept modes of ``rfftn(x)`` by the FFT: (B, C, *S) -> (B, C, *modes) complex."""
        dims = tuple(range(-len(self.modes), 0))
        x_hat = torch.fft.rfftn(x, dim=dims, norm=self.fft_norm)                   # (B, C, *S[:-1], S[-1]//2+1)
        for d, n in enumerate(x_hat.shape[2:]):
            x_hat = x_hat.index_select(2 + d, self._index(n, d).to(x.device))       # (B, C, *modes)
        return x_hat

    def _irfft_kept(self, out_hat: torch.Tensor, S_out: tuple[int, ...]) -> torch.Tensor:
        """``irfftn`` of the kept modes zero-padded to the full spectrum of S_out: (B, C, *modes) -> (B, C, *S_out)."""
        dims = tuple(range(-len(self.modes), 0))
        for d, n in enumerate((*S_out[:-1], S_out[-1] // 2 + 1)):                   # scatter into zeros
            shape = list(out_hat.shape)
            shape[2 + d] = n
            out_hat = out_hat.new_zeros(shape).index_copy(2 + d, self._index(n, d).to(out_hat.device), out_hat)
        return torch.fft.irfftn(out_hat, s=S_out, dim=dims, norm=self.fft_norm)

    def _dft_kept(self, x: torch.Tensor) -> torch.Tensor:
        """The same kept modes as :meth:`_rfft_kept` as matrix products with the truncated DFT matrices
        (only the kept frequencies are ever computed): (B, C, *S) -> (B, C, *modes) complex."""
        nd = len(self.modes)
        S = x.shape[2:]
        if x.dtype in (torch.float16, torch.bfloat16):                                    # no complex half matmuls
            x = x.float()
        W = _dft(S[-1], self.modes[-1], True, True, self.fft_norm, x.dtype, x.device)      # (S_last, 2 m_last)
        x_hat = torch.view_as_complex((x @ W).unflatten(-1, (-1, 2)))                      # (B, C, *S[:-1], m_last)
        for d in range(nd - 2, -1, -1):                                                    # c2c on the other axes
            E = _dft(S[d], self.modes[d], False, True, self.fft_norm, x.dtype, x.device)    # (S_d, m_d) complex
            x_hat = _matmul_axis(x_hat, E, 2 + d)                                           # (B, C, ..., m_d, ...)
        return x_hat

    def _idft_kept(self, out_hat: torch.Tensor, S_out: tuple[int, ...]) -> torch.Tensor:
        """``irfftn`` of the zero-padded kept modes as matrix products with inverse DFT matrices:
        (B, C, *modes) complex -> (B, C, *S_out) real."""
        nd = len(self.modes)
        dt = out_hat.real.dtype
        for d in range(nd - 1):
            G = _dft(S_out[d], self.modes[d], False, False, self.fft_norm, dt, out_hat.device)  # (m_d, S_d) complex
            out_hat = _matmul_axis(out_hat, G, 2 + d)                                        # (B, C, ..., S_d, ...)
        G = _dft(S_out[-1], self.modes[-1], True, False, self.fft_norm, dt, out_hat.device)     # (2 m_last, S_last)
        return torch.view_as_real(out_hat).flatten(-2) @ G                                    # (B, C, *S_out)


def _matmul_axis(x: torch.Tensor, M: torch.Tensor, dim: int) -> torch.Tensor:
    """Apply M (n, n') along axis ``dim`` of x as one 2-D matrix product (no batched loop): (..., n, ...) -> (..., n', ...)."""
    xm = x.movedim(dim, -1)
    lead = xm.shape[:-1]
    return (xm.reshape(-1, xm.shape[-1]) @ M).reshape(*lead, M.shape[1]).movedim(-1, dim)


def _dft_is_cheaper(S: tuple[int, ...], S_out: tuple[int, ...], modes: tuple[int, ...]) -> bool:
    """Truncated-DFT matmuls cost ~ n * m per axis against ~ 5 n log2 n for an FFT (more on sizes with large
    prime factors, e.g. Darcy's 43 and 85): use them while every axis keeps few modes."""
    return all(m <= 4 * math.log2(max(n, n_out, 2)) for m, n, n_out in zip(modes, S, S_out))


@functools.lru_cache(maxsize=64)
def _dft(n: int, m: int, last: bool, forward: bool, norm: str, dtype: torch.dtype, device: torch.device
         ) -> torch.Tensor:
    """Truncated DFT matrix of an axis of size n keeping m frequencies (in SpectralConv's weight order).

    forward: ``e^{-2 pi i k t / n}`` (n, m) with the forward normalisation; inverse: ``e^{+2 pi i k t / n}`` (m, n).
    The last (rfft) axis keeps k = 0 .. m-1 and is real-valued: forward (n, 2m) giving interleaved (re, im);
    inverse (2m, n) mapping interleaved (re, im) to ``Re sum_k w_k X_k e^{2 pi i k t / n}``, w_k = 2 except for
    k = 0 and the Nyquist frequency (whose imaginary parts irfft ignores, as here through Re)."""
    k = torch.arange(m, dtype=torch.int64) if last else torch.arange(-(m // 2), m - m // 2, dtype=torch.int64)
    t = torch.arange(n, dtype=torch.int64)
    angle = (2 * math.pi / n) * ((t[:, None] * k[None, :]) % n).double()                # (n, m), exact phase
    scale = {"forward": (1.0 / n, 1.0), "backward": (1.0, 1.0 / n), "ortho": (n ** -0.5, n ** -0.5)}[norm]
    if forward:
        E = torch.polar(torch.full_like(angle, scale[0]), -angle)                        # (n, m)
        if last:
            return torch.view_as_real(E).flatten(-2).to(dtype=dtype, device=device)        # (n, 2m)
        return E.to(dtype=_complex(dtype), device=device)
    G = torch.polar(torch.full_like(angle, scale[1]), angle).T                            # (m, n)
    if not last:
        return G.to(dtype=_complex(dtype), device=device).contiguous()
    w = torch.full((m, 1), 2.0, dtype=torch.float64)
    w[0] = 1.0
    if n % 2 == 0 and m == n // 2 + 1:
        w[-1] = 1.0
    G = G * w
    return torch.stack([G.real, -G.imag], dim=1).flatten(0, 1).to(dtype=dtype, device=device)  # (2m, n)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.cdouble if dtype == torch.float64 else torch.cfloat


def pointwise(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """A 1x1 convolution: the linear map applied to the channel axis at every point, (B, C, *S) -> (B, C', *S)."""
    y = torch.einsum("bc...,oc->bo...", x, layer.weight)   # (B, C', *S)
    if layer.bias is not None:
        y = y + layer.bias.view(1, -1, *(1,) * (x.dim() - 2))
    return y


class ChannelMLP(nn.Module):
    """Pointwise MLP over channels (GELU between layers): FNO's lifting P, projection Q and channel MLP."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, fc in enumerate(self.fcs):
            x = pointwise(x, fc)                             # (B, C_i, *S)
            if i < len(self.fcs) - 1:
                x = F.gelu(x)
        return x


class FNOBlock(nn.Module):
    """One Fourier layer: ``v = gelu(K v + W v)``, then ``v = gelu(MLP(v) + g * v_in)`` (neuraloperator's block)."""

    def __init__(self, cfg: FNOConfig):
        super().__init__()
        h = cfg.hidden_channels
        self.conv = SpectralConv(h, h, cfg.n_modes, cfg.fft_norm)
        self.skip = nn.Linear(h, h, bias=False)                                   # W
        self.mlp = ChannelMLP([h, round(h * cfg.channel_mlp_expansion), h]) if cfg.use_channel_mlp else None
        self.gate = nn.Parameter(torch.ones(1, h, *(1,) * cfg.n_dim)) if cfg.use_channel_mlp else None

    def forward(self, v: torch.Tensor, last: bool) -> torch.Tensor:
        x = self.conv(v) + pointwise(v, self.skip)                 # (B, h, *S)
        if not last:
            x = F.gelu(x)
        if self.mlp is not None:
            x = self.mlp(x) + self.gate * v                         # soft-gating skip of the block input
        if not last:
            x = F.gelu(x)                                           # (neuraloperator applies it twice without MLP)
        return x


def grid_embedding(x: torch.Tensor) -> torch.Tensor:
    """Append coordinates ``linspace(0, 1, n + 1)[:-1]`` per spatial dimension: (B, C, *S) -> (B, C + d, *S)."""
    S = x.shape[2:]
    axes = [torch.linspace(0, 1, n + 1, device=x.device, dtype=x.dtype)[:-1] for n in S]
    grids = torch.meshgrid(*axes, indexing="ij")                        # d x (*S)
    grids = [g.expand(x.shape[0], 1, *S) for g in (g.unsqueeze(0).unsqueeze(0) for g in grids)]
    return torch.cat([x, *grids], dim=1)                               # (B, C + d, *S)


class FNO(nn.Module):
    """Fourier neural operator (Li et al. 2021): ``Q(L_n(...L_1(P(a, x))))``, input (B, C_in, *S) -> (B, C_out, *S).

    Resolution-free: the same weights apply on any grid fine enough for the kept modes (zero-shot
    super-resolution, paper Sec. 5.4)."""

    def __init__(self, config: FNOConfig | None = None, **kwargs: Any):
        super().__init__()
        cfg = config if config is not None else FNOConfig(**kwargs)
        self.config = cfg
        h, c_in = cfg.hidden_channels, cfg.in_channels + (cfg.n_dim if cfg.positional_embedding else 0)
        lift = int(cfg.lifting_channel_ratio * h)
        self.lifting = ChannelMLP([c_in, lift, h] if lift else [c_in, h])                       # P
        self.blocks = nn.ModuleList(FNOBlock(cfg) for _ in range(cfg.n_layers))
        self.projection = ChannelMLP([h, int(cfg.projection_channel_ratio * h), cfg.out_channels])  # Q

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """a: (B, C_in, *S) input function on a regular grid of [0, 1)^d -> u: (B, C_out, *S)."""
        if a.dim() != self.config.n_dim + 2 or a.shape[1] != self.config.in_channels:
            raise ValueError(f"FNO expects (B, {self.config.in_channels}, {'S, ' * self.config.n_dim}) "
                             f"inputs, got {tuple(a.shape)}")
        v = grid_embedding(a) if self.config.positional_embedding else a   # (B, C_in + d, *S)
        v = self.lifting(v)                                                  # (B, h, *S)
        for i, block in enumerate(self.blocks):
            v = block(v, last=i == len(self.blocks) - 1)                     # (B, h, *S)
        return self.projection(v)                                            # (B, C_out, *S)


def build_fno(config: dict[str, Any]) -> FNO:
    """The registry's builder: an untrained FNO from its config dict."""
    from ..config import from_dict
    return FNO(from_dict(FNOConfig, config, prefix="model."))


# -- neuraloperator weights -> ours ---------------------------------------------------------------

def _mlp_from_conv1d(ours: ChannelMLP, fcs: Any) -> None:
    for mine, theirs in zip(ours.fcs, fcs):
        mine.weight.data.copy_(theirs.weight.detach()[:, :, 0])
        mine.bias.data.copy_(theirs.bias.detach())


def _spectral_weight(conv: Any) -> torch.Tensor:
    """neuraloperator's (dense or factorized) complex weight as a dense tensor (in, out, *modes)."""
    w = conv.weight
    w = w if torch.is_tensor(w) else w.to_tensor()
    return w.detach()


def fno_from_neuralop(module: Any) -> FNO:
    """Our :class:`FNO` with the weights of a ``neuralop.models.FNO`` (grid embedding, linear fno_skip,
    soft-gating channel-MLP skip or none, no norm / padding / preactivation, real data)."""
    m = module
    blocks = m.fno_blocks
    if m.complex_data or blocks.norm is not None or m.domain_padding is not None or blocks.preactivation:
        raise ValueError("fno_from_neuralop supports real data without norm, domain padding or preactivation")
    if m.fno_skip[0] != "linear" or (blocks.use_channel_mlp and m.channel_mlp_skip[0] != "soft-gating"):
        raise ValueError("fno_from_neuralop supports fno_skip='linear' and channel_mlp_skip='soft-gating'")
    if blocks.use_channel_mlp and blocks.channel_mlp[0].n_layers != 2:
        raise ValueError("fno_from_neuralop supports 2-layer channel MLPs")
    n_lift = len(m.lifting.fcs)
    cfg = FNOConfig(n_modes=tuple(int(k) for k in m._n_modes), in_channels=m.in_channels,
                    out_channels=m.out_channels, hidden_channels=m.hidden_channels, n_layers=m.n_layers,
                    lifting_channel_ratio=m.lifting_channel_ratio if n_lift == 2 else 0.0,
                    projection_channel_ratio=m.projection_channel_ratio, use_channel_mlp=blocks.use_channel_mlp,
                    channel_mlp_expansion=(blocks.channel_mlp[0].hidden_channels / m.hidden_channels
                                           if blocks.use_channel_mlp else 0.5),
                    positional_embedding=m.positional_embedding is not None, fft_norm=blocks.convs[0].fft_norm)
    ours = FNO(cfg)
    _mlp_from_conv1d(ours.lifting, m.lifting.fcs)
    _mlp_from_conv1d(ours.projection, m.projection.fcs)
    for i, block in enumerate(ours.blocks):
        conv = blocks.convs[i]
        if tuple(conv.max_n_modes) != tuple(conv.n_modes):
            raise ValueError("fno_from_neuralop needs max_n_modes == n_modes")
        block.conv.weight.data.copy_(torch.view_as_real(_spectral_weight(conv).to(torch.cfloat)))
        block.conv.bias.data.copy_(conv.bias.detach())
        block.skip.weight.data.copy_(blocks.fno_skips[i].conv.weight.detach()[:, :, 0])
        if block.mlp is not None:
            _mlp_from_conv1d(block.mlp, blocks.channel_mlp[i].fcs)
            block.gate.data.copy_(blocks.channel_mlp_skips[i].weight.detach())
    return ours
