"""The noise schedule shared by every sampler: betas, ᾱ_t, timestep spacing, q(x_t | x_0), velocity.

Papers: Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (DDPM, linear betas, eq. 4);
Nichol & Dhariwal 2021, "Improved DDPM" (cosine ᾱ, eq. 17, "squaredcos_cap_v2"); Rombach et al. 2022
(latent diffusion, "scaled_linear"); Salimans & Ho 2022, "Progressive Distillation" (v = α ε − σ x_0,
sec. 4); Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed" (zero terminal
SNR, Alg. 1; trailing spacing, Table 2). Arithmetic mirrors diffusers' float32 order so that our
schedulers agree with theirs to ≤ 1e-6 from the same config dict (tests/diffusion/test_diffusion_schedulers.py).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config import ConfigError

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
SPACINGS = ("leading", "linspace", "trailing")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass
class SchedulerOutput:
    """What ``step`` returns: x_{t-1} and the model's estimate of x_0 (None where a solver has none)."""
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None

    def __iter__(self):
        return iter((self.prev_sample, self.pred_original_sample))


def betas_for_alpha_bar(T: int, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule, Nichol & Dhariwal 2021 eq. 17: β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999)."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)],
                        dtype=torch.float32)                                  # (T,)


def make_betas(T: int, beta_start: float, beta_end: float, beta_schedule: str,
               trained_betas: Any = None) -> torch.Tensor:
    """β_1..β_T: linear (DDPM eq. 4 setup), scaled_linear (LDM: linear in √β) or squaredcos_cap_v2."""
    if trained_betas is not None:
        return torch.tensor(trained_betas, dtype=torch.float32)
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=torch.float32) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(T)
    raise ConfigError(f"beta_schedule={beta_schedule!r} is not supported; use one of {', '.join(BETA_SCHEDULES)}")


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023 Alg. 1: shift and scale √ᾱ_t so that √ᾱ_T = 0 (zero terminal SNR), keeping √ᾱ_1."""
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()               # (T,)
    a0, aT = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= aT
    alphas_bar_sqrt *= a0 / (a0 - aT)
    alphas_bar = alphas_bar_sqrt ** 2                                         # (T,)
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])   # undo the cumprod
    return 1 - alphas


def spaced_timesteps(spacing: str, T: int, n: int, steps_offset: int = 0) -> np.ndarray:
    """The n sampling timesteps τ_n > … > τ_1 (Lin et al. 2023 Table 2: leading, linspace, trailing)."""
    if not 1 <= n <= T:
        raise ConfigError(f"num_inference_steps={n} must be between 1 and num_train_timesteps={T}")
    if spacing == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        return (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64) + steps_offset
    if spacing == "trailing":
        return np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    raise ConfigError(f"timestep_spacing={spacing!r} is not supported; use one of {', '.join(SPACINGS)}")


def _expand(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) to broadcast over a sample of ``ndim`` dims."""
    x = x.flatten()
    return x.reshape(x.shape + (1,) * (ndim - 1))


def add_noise(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
              timesteps: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0), DDPM eq. 4: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
    ac = alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[timesteps.to(x0.device)]   # (B,)
    return _expand(ac ** 0.5, x0.ndim) * x0 + _expand((1 - ac) ** 0.5, x0.ndim) * noise


def get_velocity(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
                 timesteps: torch.Tensor) -> torch.Tensor:
    """v-target, Salimans & Ho 2022 sec. 4: v_t = √ᾱ_t ε − √(1 − ᾱ_t) x_0."""
    ac = alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[timesteps.to(x0.device)]   # (B,)
    return _expand(ac ** 0.5, x0.ndim) * noise - _expand((1 - ac) ** 0.5, x0.ndim) * x0


def x0_and_eps(prediction_type: str, model_output: torch.Tensor, sample: torch.Tensor,
               alpha_prod_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) from an ε-, v- or x_0-prediction (DDIM eq. 9; Salimans & Ho 2022 eq. 30)."""
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        return (sample - beta_prod_t ** 0.5 * model_output) / alpha_prod_t ** 0.5, model_output
    if prediction_type == "sample":
        return model_output, (sample - alpha_prod_t ** 0.5 * model_output) / beta_prod_t ** 0.5
    if prediction_type == "v_prediction":
        return (alpha_prod_t ** 0.5 * sample - beta_prod_t ** 0.5 * model_output,
                alpha_prod_t ** 0.5 * model_output + beta_prod_t ** 0.5 * sample)
    raise ConfigError(f"prediction_type={prediction_type!r} is not supported; "
                      f"use one of {', '.join(PREDICTION_TYPES)}")


def threshold_sample(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Dynamic thresholding, Saharia et al. 2022 (Imagen) sec. 2.3: clip x̂_0 to the ratio-quantile s, divide by s."""
    B, C, *rest = x0.shape
    flat = x0.float().reshape(B, -1)                                          # (B, C·H·W)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)   # (B, 1)
    return (torch.clamp(flat, -s, s) / s).reshape(B, C, *rest).to(x0.dtype)


class SchedulerConfig(dict):
    """A scheduler's settings: a dict readable as attributes (``scheduler.config.num_train_timesteps``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class SchedulerBase:
    """Shared pieces: ``from_config``/``from_pretrained``/``save_pretrained``, betas and ᾱ_t, q-sample."""
    order = 1
    defaults: dict[str, Any] = {}
    sigma_terminal_fix = False          # Euler/DPM: ᾱ_T = 2^-24 under zero SNR so σ_T stays finite

    def __init__(self, **kwargs: Any):
        unknown = [k for k in kwargs if k not in self.defaults]
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no setting {unknown[0]!r}; "
                              f"known: {', '.join(sorted(self.defaults))}")
        self.config = SchedulerConfig({**self.defaults, **kwargs})
        c = self.config
        if c.get("prediction_type") not in PREDICTION_TYPES:
            raise ConfigError(f"prediction_type={c.get('prediction_type')!r} is not supported; "
                              f"use one of {', '.join(PREDICTION_TYPES)}")
        if c.timestep_spacing not in SPACINGS:
            raise ConfigError(f"timestep_spacing={c.timestep_spacing!r} is not supported; "
                              f"use one of {', '.join(SPACINGS)}")
        self.betas = make_betas(c.num_train_timesteps, c.beta_start, c.beta_end, c.beta_schedule,
                                c.get("trained_betas"))                     # (T,)
        if c.rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)              # ᾱ_t, (T,)
        if c.rescale_betas_zero_snr and self.sigma_terminal_fix:
            self.alphas_cumprod[-1] = 2 ** -24        # terminal fix: σ_T = √((1−ᾱ_T)/ᾱ_T) finite
        self.num_inference_steps: int | None = None
        self.timesteps = torch.from_numpy(np.arange(0, c.num_train_timesteps)[::-1].copy())

    # ---- construction / persistence (diffusers' names) ----
    @classmethod
    def from_config(cls, config: dict[str, Any] | "SchedulerBase", **overrides: Any):
        """Build from a diffusers-style config dict; keys of other schedulers and ``_``-keys are ignored."""
        if isinstance(config, SchedulerBase):
            config = config.config
        merged = {**dict(config), **overrides}
        return cls(**{k: v for k, v in merged.items() if k in cls.defaults})

    @classmethod
    def from_pretrained(cls, path: str | Path, subfolder: str | None = None, **overrides: Any):
        """Read ``scheduler_config.json`` of a diffusers folder (or its ``scheduler/`` subfolder)."""
        p = Path(path) / subfolder if subfolder else Path(path)
        for f in (p / "scheduler_config.json", p / "scheduler" / "scheduler_config.json", p):
            if f.is_file():
                return cls.from_config(json.loads(f.read_text()), **overrides)
        raise ConfigError(f"no scheduler_config.json in {p}; pass a diffusers scheduler folder")

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``scheduler_config.json`` that diffusers' ``from_pretrained`` reads."""
        Path(path).mkdir(parents=True, exist_ok=True)
        name = self.diffusers_name if hasattr(self, "diffusers_name") else type(self).__name__
        cfg = {"_class_name": name, **{k: v for k, v in self.config.items() if k in self.defaults}}
        (Path(path) / "scheduler_config.json").write_text(json.dumps(cfg, indent=2))

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """Variance-preserving solvers feed x_t to the model unscaled."""
        return sample

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0), DDPM eq. 4."""
        return add_noise(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """v-prediction target, Salimans & Ho 2022."""
        return get_velocity(self.alphas_cumprod, sample, noise, timesteps)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the network regresses: ε, v or x_0 according to ``prediction_type``."""
        p = self.config.prediction_type
        if p == "epsilon":
            return noise
        if p == "v_prediction":
            return self.get_velocity(x0, noise, timesteps)
        return x0

    def _clip_x0(self, x0: torch.Tensor) -> torch.Tensor:
        """DDPM/DDIM's optional x̂_0 clipping or dynamic thresholding."""
        c = self.config
        if c.get("thresholding"):
            return threshold_sample(x0, c.dynamic_thresholding_ratio, c.sample_max_value)
        if c.get("clip_sample"):
            return x0.clamp(-c.clip_sample_range, c.clip_sample_range)
        return x0


def randn_like_diffusers(shape: torch.Size, generator: torch.Generator | None, like: torch.Tensor,
                         dtype: torch.dtype | None = None) -> torch.Tensor:
    """Gaussian noise drawn exactly as diffusers' ``randn_tensor`` draws it on CPU (same generator → same numbers)."""
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=dtype or like.dtype).to(like.device)


class IndexedSchedulerBase(SchedulerBase):
    """Schedulers that walk their timesteps by index (Euler, DPM-Solver): diffusers' ``step_index`` and
    ``begin_index`` (img2img starts part way down the schedule)."""
    _step_index: int | None = None
    _begin_index: int | None = None

    @property
    def step_index(self) -> int | None:
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = begin_index
