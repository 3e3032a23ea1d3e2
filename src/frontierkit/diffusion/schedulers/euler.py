"""Euler samplers of the probability-flow ODE in σ-space, Karras et al. 2022 "Elucidating the Design
Space of Diffusion-Based Generative Models" (Alg. 1/2, eq. 5: dx/dσ = (x − D(x; σ))/σ), with σ_t =
√((1 − ᾱ_t)/ᾱ_t) of a discrete VP schedule; the ancestral variant splits each step into a
deterministic part to σ_down and fresh noise σ_up (k-diffusion's ``sample_euler_ancestral``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...config import ConfigError
from .schedule import IndexedSchedulerBase, SchedulerOutput, randn_like_diffusers


def _spaced_float(spacing: str, T: int, n: int, steps_offset: int) -> np.ndarray:
    """Euler's float32 timesteps (linspace is not rounded, unlike DDPM/DDIM)."""
    if not 1 <= n <= T:
        raise ConfigError(f"num_inference_steps={n} must be between 1 and num_train_timesteps={T}")
    if spacing == "linspace":
        return np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
    if spacing == "leading":
        return (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.float32) + steps_offset
    return np.arange(T, 0, -T / n).round().copy().astype(np.float32) - 1                 # trailing


class _SigmaScheduler(IndexedSchedulerBase):
    """Common σ-space bookkeeping: σ per timestep, the running step index, input scaling 1/√(σ² + 1)."""
    sigma_terminal_fix = True

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).flip(0)   # (T,) σ, high → low
        self.sigmas = torch.cat([sigmas, torch.zeros(1)])
        self.timesteps = torch.from_numpy(
            np.linspace(0, len(self) - 1, len(self), dtype=float)[::-1].copy()).to(torch.float32)
        self._step_index: int | None = None
        self._begin_index: int | None = None

    @property
    def init_noise_sigma(self) -> torch.Tensor:
        """x_T ~ N(0, σ_max²) (+1 under leading spacing, whose first σ is not the schedule's last)."""
        s = self.sigmas.max()
        return s if self.config.timestep_spacing in ("linspace", "trailing") else (s ** 2 + 1) ** 0.5

    def index_for_timestep(self, timestep: Any, schedule_timesteps: torch.Tensor | None = None) -> int:
        """Position of ``timestep`` in the schedule (the second hit when it repeats, as diffusers)."""
        st = self.timesteps if schedule_timesteps is None else schedule_timesteps
        hits = (st == timestep).nonzero()
        if len(hits) == 0:
            raise ConfigError(f"timestep {float(timestep)} is not in this scheduler's timesteps; call "
                              "set_timesteps first and pass one of scheduler.timesteps")
        return int(hits[1 if len(hits) > 1 else 0])

    def _init_step_index(self, timestep: Any) -> None:
        self._step_index = self.index_for_timestep(timestep) if self._begin_index is None else self._begin_index

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """The VP model sees x/√(σ² + 1) (Karras et al. 2022 Table 1, c_in)."""
        if self._step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self._step_index]
        return sample / ((sigma ** 2 + 1) ** 0.5)

    def _step_indices(self, timesteps: torch.Tensor) -> list[int]:
        """Schedule positions of ``timesteps`` (img2img: the begin index)."""
        if self._begin_index is None:
            return [self.index_for_timestep(t) for t in timesteps]
        return [self._step_index if self._step_index is not None else self._begin_index] * timesteps.shape[0]

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """VE form x + σ ε at the timesteps' σ (the sampler's x is x_t/√ᾱ_t, Karras et al. 2022 Table 1)."""
        sigma = self.sigmas.to(original_samples)[self._step_indices(timesteps)].flatten()      # (B,)
        sigma = sigma.reshape(sigma.shape + (1,) * (original_samples.ndim - 1))
        return original_samples + noise * sigma

    def _x0(self, model_output: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor,
            sigma_hat: torch.Tensor) -> torch.Tensor:
        """D(x; σ) from an ε-, v- or x_0-prediction of the VP model."""
        p = self.config.prediction_type
        if p == "epsilon":
            return sample - sigma_hat * model_output
        if p == "v_prediction":
            return model_output * (-sigma / (sigma ** 2 + 1) ** 0.5) + (sample / (sigma ** 2 + 1))
        return model_output

    def _set_sigmas(self, timesteps: np.ndarray, device: Any) -> None:
        sig = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        sig = np.interp(timesteps, np.arange(0, len(sig)), sig)
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0.0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        """τ from ``timestep_spacing``; σ(τ) interpolated linearly in t; a final σ = 0."""
        c = self.config
        self.num_inference_steps = num_inference_steps
        self._set_sigmas(_spaced_float(c.timestep_spacing, c.num_train_timesteps, num_inference_steps,
                                       c.steps_offset), device)


class EulerDiscreteScheduler(_SigmaScheduler):
    """Euler (Karras et al. 2022 Alg. 2 with optional churn) and diffusers' ``EulerDiscreteScheduler`` interface."""
    defaults: dict[str, Any] = dict(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
        trained_betas=None, prediction_type="epsilon", timestep_spacing="linspace", steps_offset=0,
        rescale_betas_zero_snr=False, interpolation_type="linear", final_sigmas_type="zero")
    diffusers_name = "EulerDiscreteScheduler"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.config.interpolation_type != "linear" or self.config.final_sigmas_type != "zero":
            raise ConfigError("EulerDiscreteScheduler supports interpolation_type='linear' and "
                              "final_sigmas_type='zero' only")

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, s_churn: float = 0.0,
             s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
             generator: torch.Generator | None = None, return_dict: bool = True) -> SchedulerOutput | tuple:
        """x_{i+1} = x_i + (σ_{i+1} − σ̂_i)·(x_i − D(x_i; σ̂_i))/σ̂_i, Karras et al. 2022 Alg. 2."""
        if self._step_index is None:
            self._init_step_index(timestep)
        sample = sample.to(torch.float32)
        sigma = self.sigmas[self._step_index]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            eps = randn_like_diffusers(model_output.shape, generator, model_output) * s_noise
            sample = sample + eps * (sigma_hat ** 2 - sigma ** 2) ** 0.5
        x0 = self._x0(model_output, sample, sigma, sigma_hat)                    # (B, C, H, W)
        derivative = (sample - x0) / sigma_hat                                   # eq. 5
        dt = self.sigmas[self._step_index + 1] - sigma_hat
        prev_sample = (sample + derivative * dt).to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return prev_sample, x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class EulerAncestralDiscreteScheduler(_SigmaScheduler):
    """Euler ancestral: deterministic Euler to σ_down, then noise of std σ_up (σ_down² + σ_up² = σ_next²)."""
    defaults: dict[str, Any] = dict(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
        trained_betas=None, prediction_type="epsilon", timestep_spacing="linspace", steps_offset=0,
        rescale_betas_zero_snr=False)
    diffusers_name = "EulerAncestralDiscreteScheduler"

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True) -> SchedulerOutput | tuple:
        """σ_up = √(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²), σ_down = √(σ_{i+1}² − σ_up²); x ← x + d(σ_down − σ_i) + σ_up z."""
        if self._step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self._step_index]
        sample = sample.to(torch.float32)
        x0 = self._x0(model_output, sample, sigma, sigma)                        # (B, C, H, W)
        sigma_to = self.sigmas[self._step_index + 1]
        sigma_up = (sigma_to ** 2 * (sigma ** 2 - sigma_to ** 2) / sigma ** 2) ** 0.5
        sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
        prev_sample = sample + (sample - x0) / sigma * (sigma_down - sigma)
        z = randn_like_diffusers(model_output.shape, generator, model_output)
        prev_sample = (prev_sample + z * sigma_up).to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return prev_sample, x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
