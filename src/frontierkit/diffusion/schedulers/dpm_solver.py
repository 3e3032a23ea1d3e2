"""DPM-Solver++(2M), Lu et al. 2022 "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models" (Alg. 2, multistep second order in the data-prediction x_θ, λ = log(α/σ)),
with first-order (DDIM-equivalent, eq. 8) warm-up and final steps as diffusers' ``lower_order_final``."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...config import ConfigError
from .schedule import IndexedSchedulerBase, SchedulerOutput, x0_and_eps


def _timesteps(spacing: str, T: int, n: int, steps_offset: int) -> np.ndarray:
    """n timesteps from n + 1 points, dropping t = 0 (the solver integrates down to σ = 0)."""
    if not 1 <= n <= T:
        raise ConfigError(f"num_inference_steps={n} must be between 1 and num_train_timesteps={T}")
    if spacing == "linspace":
        return np.linspace(0, T - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = T // (n + 1)
        return (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64) + steps_offset
    return np.arange(T, 0, -T / n).round().copy().astype(np.int64) - 1                 # trailing


def _alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VP (α_t, σ_t) from the VE σ = σ_t/α_t: α_t = 1/√(σ² + 1)."""
    alpha_t = 1 / ((sigma ** 2 + 1) ** 0.5)
    return alpha_t, sigma * alpha_t


class DPMSolverMultistepScheduler(IndexedSchedulerBase):
    """DPM-Solver++ (2M, midpoint) with diffusers' ``DPMSolverMultistepScheduler`` interface."""
    defaults: dict[str, Any] = dict(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
        trained_betas=None, solver_order=2, prediction_type="epsilon", thresholding=False,
        dynamic_thresholding_ratio=0.995, sample_max_value=1.0, algorithm_type="dpmsolver++",
        solver_type="midpoint", lower_order_final=True, euler_at_final=False, final_sigmas_type="zero",
        timestep_spacing="linspace", steps_offset=0, rescale_betas_zero_snr=False)
    init_noise_sigma = 1.0
    sigma_terminal_fix = True
    diffusers_name = "DPMSolverMultistepScheduler"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        c = self.config
        if c.algorithm_type != "dpmsolver++" or c.solver_type != "midpoint" or c.solver_order not in (1, 2):
            raise ConfigError("DPMSolverMultistepScheduler implements algorithm_type='dpmsolver++', "
                              f"solver_type='midpoint', solver_order 1 or 2 (got {c.algorithm_type}, "
                              f"{c.solver_type}, {c.solver_order})")
        if c.final_sigmas_type != "zero":
            raise ConfigError("DPMSolverMultistepScheduler supports final_sigmas_type='zero' only")
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5          # (T,)
        self.timesteps = torch.from_numpy(np.linspace(0, len(self) - 1, len(self), dtype=np.float32)[::-1].copy())
        self.model_outputs: list[torch.Tensor | None] = [None] * c.solver_order
        self.lower_order_nums = 0
        self._step_index: int | None = None
        self._begin_index: int | None = None

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        """τ from ``timestep_spacing``; σ(τ) interpolated in t, then σ = 0 at the end."""
        c = self.config
        ts = _timesteps(c.timestep_spacing, c.num_train_timesteps, num_inference_steps, c.steps_offset)
        sig = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        sig = np.interp(ts, np.arange(0, len(sig)), sig)
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(ts).to(device=device, dtype=torch.int64)
        self.num_inference_steps = len(ts)
        self.model_outputs = [None] * c.solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None

    def _init_step_index(self, timestep: Any) -> None:
        if self._begin_index is not None:
            self._step_index = self._begin_index
            return
        hits = (self.timesteps == timestep).nonzero()
        self._step_index = len(self.timesteps) - 1 if len(hits) == 0 else int(hits[1 if len(hits) > 1 else 0])

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """α_t x_0 + σ_t ε at the schedule's σ (after ``set_timesteps``; before it, the ᾱ form)."""
        if self.num_inference_steps is None:
            return super().add_noise(original_samples, noise, timesteps)
        if self._begin_index is None:
            idx = []
            for t in timesteps:
                hits = (self.timesteps == t).nonzero()
                idx.append(len(self.timesteps) - 1 if len(hits) == 0 else int(hits[1 if len(hits) > 1 else 0]))
        else:
            idx = [self._step_index if self._step_index is not None else self._begin_index] * timesteps.shape[0]
        sigma = self.sigmas.to(original_samples)[idx].flatten()                             # (B,)
        alpha_t, sigma_t = _alpha_sigma(sigma.reshape(sigma.shape + (1,) * (original_samples.ndim - 1)))
        return alpha_t * original_samples + sigma_t * noise

    def convert_model_output(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """x_θ(x_t, t): the data prediction DPM-Solver++ integrates (Lu et al. 2022 sec. 4)."""
        sigma = self.sigmas[self._step_index]
        alpha_t, sigma_t = _alpha_sigma(sigma)
        p = self.config.prediction_type
        if p == "epsilon":
            x0 = (sample - sigma_t * model_output) / alpha_t
        elif p == "v_prediction":
            x0 = alpha_t * sample - sigma_t * model_output
        else:
            x0 = model_output
        return self._clip_x0(x0) if self.config.thresholding else x0

    def _lambdas(self, *idx: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(α, σ, λ = log α − log σ) at the given σ-indices."""
        out = []
        for i in idx:
            a, s = _alpha_sigma(self.sigmas[i])
            out.append((a, s, torch.log(a) - torch.log(s)))
        return out

    def first_order_update(self, x0: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """DPM-Solver++(1) = DDIM: x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x_θ (Lu et al. 2022 eq. 8)."""
        i = self._step_index
        (alpha_t, sigma_t, lambda_t), (_, sigma_s, lambda_s) = self._lambdas(i + 1, i)
        h = lambda_t - lambda_s
        return (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * x0

    def second_order_update(self, sample: torch.Tensor) -> torch.Tensor:
        """DPM-Solver++(2M) (Lu et al. 2022 Alg. 2): D1 = (m0 − m1)/r0, midpoint correction −½ α_t (e^{−h} − 1) D1."""
        i = self._step_index
        (alpha_t, sigma_t, lambda_t), (_, sigma_s0, lambda_s0), (_, _, lambda_s1) = self._lambdas(i + 1, i, i - 1)
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        r0 = h_0 / h
        D0, D1 = m0, (1.0 / r0) * (m0 - m1)
        return ((sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * D1)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None, variance_noise: torch.Tensor | None = None,
             return_dict: bool = True) -> SchedulerOutput | tuple:
        """One multistep update: first order at the start and (for < 15 steps, or σ_final = 0) at the end."""
        if self.num_inference_steps is None:
            raise ConfigError("call set_timesteps(n) before step()")
        if self._step_index is None:
            self._init_step_index(timestep)
        c, n = self.config, len(self.timesteps)
        last = self._step_index == n - 1
        lower_order_final = last and (c.euler_at_final or (c.lower_order_final and n < 15)
                                      or c.final_sigmas_type == "zero")
        x0 = self.convert_model_output(model_output, sample)                      # (B, C, H, W)
        self.model_outputs = self.model_outputs[1:] + [x0]
        sample = sample.to(torch.float32)
        if c.solver_order == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev_sample = self.first_order_update(x0, sample)
        else:
            prev_sample = self.second_order_update(sample)
        self.lower_order_nums = min(self.lower_order_nums + 1, c.solver_order)
        prev_sample = prev_sample.to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return (prev_sample,)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
