"""DDIM, Song, Meng & Ermon 2021 "Denoising Diffusion Implicit Models" (eq. 12 update, eq. 16 σ_t(η)).

On purpose we differ from diffusers in one place: diffusers' ``DDIMScheduler.step`` takes the previous
timestep as ``t − T // n``, which is right only for ``leading`` spacing; under ``linspace`` and (for n
not dividing T) ``trailing`` it reads ᾱ at a timestep that is not the next one sampled (diffusers issue
#12633, also #11347 and #9261). We look τ_{i−1} up in ``self.timesteps`` (as diffusers' own DDPMScheduler
does) — the DDIM paper's update between consecutive τ. ``prev_timestep_rule="stride"`` reproduces
diffusers exactly; tests/diffusion/test_diffusion_schedulers.py shows both.
"""
from __future__ import annotations

from typing import Any

import torch

from ...config import ConfigError
from .schedule import SchedulerBase, SchedulerOutput, randn_like_diffusers, spaced_timesteps, x0_and_eps


class DDIMScheduler(SchedulerBase):
    """DDIM sampler (η = 0 deterministic) with diffusers' ``DDIMScheduler`` interface."""
    defaults: dict[str, Any] = dict(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
        trained_betas=None, clip_sample=True, set_alpha_to_one=True, steps_offset=0,
        prediction_type="epsilon", thresholding=False, dynamic_thresholding_ratio=0.995,
        clip_sample_range=1.0, sample_max_value=1.0, timestep_spacing="leading",
        rescale_betas_zero_snr=False, prev_timestep_rule="schedule")
    init_noise_sigma = 1.0
    diffusers_name = "DDIMScheduler"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.config.prev_timestep_rule not in ("schedule", "stride"):
            raise ConfigError(f"prev_timestep_rule={self.config.prev_timestep_rule!r}: use 'schedule' "
                              "(the next sampled timestep) or 'stride' (diffusers' t − T//n)")
        self.final_alpha_cumprod = torch.tensor(1.0) if self.config.set_alpha_to_one else self.alphas_cumprod[0]

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        """τ_n > … > τ_1 from ``timestep_spacing``."""
        c = self.config
        ts = spaced_timesteps(c.timestep_spacing, c.num_train_timesteps, num_inference_steps, c.steps_offset)
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.from_numpy(ts).to(device)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int | torch.Tensor:
        """τ_{i−1}: the next sampled timestep (−1 after the last); 'stride' gives diffusers' t − T//n."""
        if self.config.prev_timestep_rule == "stride":
            return timestep - self.config.num_train_timesteps // self.num_inference_steps
        index = (self.timesteps == timestep).nonzero(as_tuple=True)[0]
        if len(index) == 0:                         # a timestep outside the schedule: fall back to the stride
            return timestep - self.config.num_train_timesteps // self.num_inference_steps
        i = int(index[0])
        return -1 if i == len(self.timesteps) - 1 else self.timesteps[i + 1]

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             eta: float = 0.0, use_clipped_model_output: bool = False, generator: torch.Generator | None = None,
             variance_noise: torch.Tensor | None = None, return_dict: bool = True) -> SchedulerOutput | tuple:
        """x_{τ'} = √ᾱ_{τ'} x̂_0 + √(1 − ᾱ_{τ'} − σ²) ε̂ + σ z (DDIM eq. 12), σ = η·√β̃ (eq. 16)."""
        if self.num_inference_steps is None:
            raise ConfigError("call set_timesteps(n) before step()")
        prev_t = self.previous_timestep(timestep)
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        x0, eps = x0_and_eps(self.config.prediction_type, model_output, sample, alpha_prod_t)  # (B, C, H, W)
        x0 = self._clip_x0(x0)
        variance = (1 - alpha_prod_t_prev) / beta_prod_t * (1 - alpha_prod_t / alpha_prod_t_prev)   # eq. 16
        std_dev_t = eta * variance ** 0.5
        if use_clipped_model_output:
            eps = (sample - alpha_prod_t ** 0.5 * x0) / beta_prod_t ** 0.5
        direction = (1 - alpha_prod_t_prev - std_dev_t ** 2) ** 0.5 * eps
        prev_sample = alpha_prod_t_prev ** 0.5 * x0 + direction
        if eta > 0:
            if variance_noise is not None and generator is not None:
                raise ConfigError("pass either generator or variance_noise to DDIMScheduler.step, not both")
            if variance_noise is None:
                variance_noise = randn_like_diffusers(model_output.shape, generator, model_output)
            prev_sample = prev_sample + std_dev_t * variance_noise
        if not return_dict:
            return prev_sample, x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
