"""Diffusion samplers as pure functions of a noise schedule (no model inside), with diffusers' call
signatures: DDPM (Ho et al. 2020), DDIM (Song et al. 2021), Euler / Euler ancestral (Karras et al. 2022),
DPM-Solver++(2M) (Lu et al. 2022); schedule helpers in :mod:`.schedule` (Lin et al. 2023 zero-SNR)."""
from .ddim import DDIMScheduler
from .ddpm import DDPMScheduler
from .dpm_solver import DPMSolverMultistepScheduler
from .euler import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler
from .schedule import (SchedulerOutput, add_noise, get_velocity, make_betas, rescale_zero_terminal_snr,
                       spaced_timesteps)

SCHEDULERS = {c.__name__: c for c in (DDPMScheduler, DDIMScheduler, EulerDiscreteScheduler,
                                       EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler)}

__all__ = ["DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
           "DPMSolverMultistepScheduler", "SchedulerOutput", "SCHEDULERS", "add_noise", "get_velocity",
           "make_betas", "rescale_zero_terminal_snr", "spaced_timesteps", "scheduler_from_config"]


def scheduler_from_config(config: dict) -> object:
    """The scheduler a diffusers ``scheduler_config.json`` names (``_class_name``), DDPM when unnamed."""
    from ...config import ConfigError
    name = config.get("_class_name", "DDPMScheduler")
    if name not in SCHEDULERS:
        raise ConfigError(f"scheduler {name!r} is not implemented; use one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(config)
