"""DDPM ancestral sampling, Ho et al. 2020 "Denoising Diffusion Probabilistic Models" (eqs. 6-7, Alg. 2),
over any subsequence of timesteps (Nichol & Dhariwal 2021 sec. 4: β̃ recomputed for strided steps)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...config import ConfigError
from .schedule import SchedulerBase, SchedulerOutput, randn_like_diffusers, spaced_timesteps, x0_and_eps

VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log")


class DDPMScheduler(SchedulerBase):
    """DDPM posterior q(x_{t'} | x_t, x̂_0) sampler with diffusers' ``DDPMScheduler`` interface."""
    defaults: dict[str, Any] = dict(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
        trained_betas=None, variance_type="fixed_small", clip_sample=True, prediction_type="epsilon",
        thresholding=False, dynamic_thresholding_ratio=0.995, clip_sample_range=1.0, sample_max_value=1.0,
        timestep_spacing="leading", steps_offset=0, rescale_betas_zero_snr=False)
    init_noise_sigma = 1.0

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.config.variance_type not in VARIANCE_TYPES:
            raise ConfigError(f"variance_type={self.config.variance_type!r} is not supported; "
                              f"use one of {', '.join(VARIANCE_TYPES)}")
        self.one = torch.tensor(1.0)
        self.custom_timesteps = False

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None,
                      timesteps: list[int] | None = None) -> None:
        """τ from ``timestep_spacing`` (or a custom descending list)."""
        c = self.config
        if timesteps is not None:
            ts = np.array(timesteps, dtype=np.int64)
            if (np.diff(ts) >= 0).any() or ts[0] >= c.num_train_timesteps:
                raise ConfigError("custom timesteps must be descending and below num_train_timesteps")
            self.custom_timesteps, self.num_inference_steps = True, None
        else:
            ts = spaced_timesteps(c.timestep_spacing, c.num_train_timesteps, num_inference_steps, c.steps_offset)
            self.custom_timesteps, self.num_inference_steps = False, num_inference_steps
        self.timesteps = torch.from_numpy(ts).to(device)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int | torch.Tensor:
        """The next listed timestep τ_{i-1} (−1 after the last), t − 1 before ``set_timesteps``."""
        if self.custom_timesteps or self.num_inference_steps:
            index = (self.timesteps == timestep).nonzero(as_tuple=True)[0][0]
            return torch.tensor(-1) if index == self.timesteps.shape[0] - 1 else self.timesteps[index + 1]
        return timestep - 1

    def _variance(self, alpha_prod_t: torch.Tensor, alpha_prod_t_prev: torch.Tensor) -> torch.Tensor:
        """β̃_t = (1 − ᾱ_{t'})/(1 − ᾱ_t) · β_t (DDPM eq. 7) or β_t itself (fixed_large)."""
        current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev
        variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
        vt = self.config.variance_type
        if vt == "fixed_small_log":
            return torch.exp(0.5 * torch.log(variance))          # already a standard deviation
        if vt == "fixed_large":
            return current_beta_t
        if vt == "fixed_large_log":
            return torch.log(current_beta_t)
        return variance

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True) -> SchedulerOutput | tuple:
        """x_{t'} = μ̃(x_t, x̂_0) + σ z, DDPM eq. 7 (posterior mean) and Alg. 2."""
        t = timestep
        prev_t = self.previous_timestep(t)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t
        x0, _ = x0_and_eps(self.config.prediction_type, model_output, sample, alpha_prod_t)   # (B, C, H, W)
        x0 = self._clip_x0(x0)
        x0_coeff = (alpha_prod_t_prev ** 0.5 * current_beta_t) / beta_prod_t               # eq. 7
        xt_coeff = current_alpha_t ** 0.5 * beta_prod_t_prev / beta_prod_t
        prev_sample = x0_coeff * x0 + xt_coeff * sample
        if t > 0:
            z = randn_like_diffusers(model_output.shape, generator, model_output)
            var = self._variance(alpha_prod_t, alpha_prod_t_prev)
            sigma = var if self.config.variance_type == "fixed_small_log" else var ** 0.5
            prev_sample = prev_sample + sigma * z
        if not return_dict:
            return prev_sample, x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
