"""Sampling pipelines: text-to-image latent diffusion with classifier-free guidance, img2img, ControlNet
conditioning and SDXL micro-conditioning, on any UNet / VAE / ControlNet with diffusers' forward arguments.

Papers: Rombach et al. 2022 "High-Resolution Image Synthesis with Latent Diffusion Models" (sample in the
VAE latent, decode z/scaling_factor); Ho & Salimans 2022 "Classifier-Free Diffusion Guidance" (ε̃ = ε_u +
s(ε_c − ε_u), eq. 6); Lin et al. 2023 sec. 3.4 (guidance rescale φ); Meng et al. 2022 "SDEdit" (img2img:
noise the encoded image to τ = strength·T and denoise); Zhang et al. 2023 "Adding Conditional Control to
Text-to-Image Diffusion Models" (ControlNet residuals, guess mode); Podell et al. 2023 "SDXL" sec. 2.2
(size/crop micro-conditioning through ``time_ids``). The order of operations follows diffusers'
StableDiffusion(ControlNet/Img2Img/XL)Pipeline so seeded runs agree with it on the same weights
(tests/diffusion/test_diffusion_pipeline.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..config import ConfigError


def randn(shape: Sequence[int], generator: torch.Generator | None, dtype=torch.float32) -> torch.Tensor:
    """Initial noise drawn as diffusers draws it on CPU (seeded generator → identical x_T)."""
    return torch.randn(tuple(shape), generator=generator, dtype=dtype)


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Ho & Salimans 2022 eq. 6: ε̃ = ε_u + s (ε_c − ε_u)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def rescale_guidance(eps_cfg: torch.Tensor, eps_cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Lin et al. 2023 sec. 3.4: rescale ε̃ to the std of ε_c, mixed by φ, against over-exposure."""
    dims = list(range(1, eps_cond.ndim))
    rescaled = eps_cfg * (eps_cond.std(dim=dims, keepdim=True) / eps_cfg.std(dim=dims, keepdim=True))
    return phi * rescaled + (1 - phi) * eps_cfg


def _tensor_out(out: Any) -> torch.Tensor:
    """Our models return tensors; diffusers' return ``.sample`` objects or tuples."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "sample"):
        return out.sample
    return out[0]


def _cfg_value(module: Any, name: str, default: Any = None) -> Any:
    """A config field of our module (``.cfg``) or a diffusers one (``.config``)."""
    for attr in ("cfg", "config"):
        c = getattr(module, attr, None)
        if c is not None:
            v = c.get(name, default) if isinstance(c, dict) else getattr(c, name, default)
            if v is not None:
                return v
    return default


class DualTextEncoder:
    """SDXL's two text encoders (Podell et al. 2023 sec. 2.1): hidden states concatenated on the channel
    axis, pooled embedding from the second encoder."""

    def __init__(self, first: Callable, second: Callable):
        self.first, self.second = first, second

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        h1, _ = self.first(prompts)                                              # (B, L, D1)
        h2, pooled = self.second(prompts)                                        # (B, L, D2), (B, P)
        return torch.cat([h1, h2], dim=-1), pooled                               # (B, L, D1 + D2)


@dataclass
class PipelineOutput:
    """Images (B, C, H, W) in [0, 1] (or latents / raw decoder output), and the final latents."""
    images: torch.Tensor
    latents: torch.Tensor


class StableDiffusionPipeline:
    """Latent (or pixel, with ``vae=None``) diffusion sampler with CFG, img2img, ControlNet and SDXL inputs.

    ``text_encoder(prompts: list[str]) -> (hidden (B, L, D), pooled (B, P) or None)``: any kit text encoder
    (e.g. :class:`frontierkit.diffusion.text.CaptionEncoder`); or pass ``prompt_embeds`` directly.
    """

    def __init__(self, unet: nn.Module, scheduler: Any, vae: nn.Module | None = None,
                 text_encoder: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor | None]] | None = None,
                 controlnet: nn.Module | None = None, force_zeros_for_empty_prompt: bool = False):
        self.unet, self.scheduler, self.vae = unet, scheduler, vae
        self.text_encoder, self.controlnet = text_encoder, controlnet
        self.force_zeros_for_empty_prompt = force_zeros_for_empty_prompt
        """SDXL's rule (diffusers' StableDiffusionXLPipeline): with no negative prompt, ε_u reads zero embeddings
        (hidden and pooled) rather than the encoded empty prompt"""
        self.vae_scale_factor = 2 ** (len(_cfg_value(vae, "block_out_channels")) - 1) if vae is not None else 1

    # ---- conditioning ----
    @torch.no_grad()
    def encode_prompt(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(cond, uncond, pooled cond, pooled uncond) from the text encoder; "" is the unconditional prompt."""
        if self.text_encoder is None:
            raise ConfigError("this pipeline has no text encoder: pass prompt_embeds (and "
                              "negative_prompt_embeds) instead of prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        neg = negative_prompt if negative_prompt is not None else ""
        negs = [neg] * len(prompts) if isinstance(neg, str) else list(neg)
        if len(negs) != len(prompts):
            raise ConfigError(f"negative_prompt has {len(negs)} entries for {len(prompts)} prompts")
        c, pc = self.text_encoder(prompts)
        if negative_prompt is None and self.force_zeros_for_empty_prompt:
            return c, torch.zeros_like(c), pc, None if pc is None else torch.zeros_like(pc)
        u, pu = self.text_encoder(negs)
        return c, u, pc, pu

    def _controlnet_residuals(self, x_in: torch.Tensor, t: Any, embeds: torch.Tensor, image: torch.Tensor,
                              scale: float, guess_mode: bool, cfg: bool, added: dict | None):
        """ControlNet residuals; in guess mode only the conditional half sees the control (zeros for ε_u)."""
        if guess_mode and cfg:
            x_c, emb_c = x_in.chunk(2)[1], embeds.chunk(2)[1]
            added_c = {k: v.chunk(2)[1] for k, v in added.items()} if added else None
        else:
            x_c, emb_c, added_c = x_in, embeds, added
        kw = {"added_cond_kwargs": added_c} if added_c else {}
        if "return_dict" in inspect.signature(self.controlnet.forward).parameters:   # a diffusers module
            kw["return_dict"] = False
        out = self.controlnet(x_c, t, encoder_hidden_states=emb_c, controlnet_cond=image,
                              conditioning_scale=scale, guess_mode=guess_mode, **kw)
        down, mid = out[0], out[1]
        if guess_mode and cfg:
            down = [torch.cat([torch.zeros_like(d), d]) for d in down]
            mid = torch.cat([torch.zeros_like(mid), mid])
        return down, mid

    def predict_noise(self, latents: torch.Tensor, t: Any, embeds: torch.Tensor | None, guidance_scale: float,
                      guidance_rescale: float = 0.0, added: dict | None = None, control: dict | None = None,
                      class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """The guided model output at x_t: one batched UNet call on [uncond; cond] when s > 1."""
        cfg = guidance_scale > 1.0
        x_in = torch.cat([latents] * 2) if cfg else latents                      # (2B or B, C, h, w)
        x_in = self.scheduler.scale_model_input(x_in, t)
        kw: dict[str, Any] = {}
        if added:
            kw["added_cond_kwargs"] = added
        if class_labels is not None:
            kw["class_labels"] = class_labels
        if control is not None:
            down, mid = self._controlnet_residuals(x_in, t, embeds, cfg=cfg, added=added, **control)
            kw.update(down_block_additional_residuals=down, mid_block_additional_residual=mid)
        eps = _tensor_out(self.unet(x_in, t, encoder_hidden_states=embeds, **kw))
        if not cfg:
            return eps
        eps_u, eps_c = eps.chunk(2)
        guided = classifier_free_guidance(eps_u, eps_c, guidance_scale)
        return rescale_guidance(guided, eps_c, guidance_rescale) if guidance_rescale > 0 else guided

    # ---- latents <-> images ----
    def decode(self, latents: torch.Tensor, output_type: str = "pt",
               generator: torch.Generator | None = None) -> torch.Tensor:
        """x = D(z / scaling_factor) mapped from [−1, 1] to [0, 1] ("pt"), or the latents ("latent")."""
        if output_type == "latent" or self.vae is None and output_type == "raw":
            return latents
        if self.vae is None:
            x = latents
        else:
            x = _tensor_out(self.vae.decode(latents / _cfg_value(self.vae, "scaling_factor", 0.18215)))
        return x if output_type == "raw" else (x / 2 + 0.5).clamp(0, 1)

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = scaling_factor · E(x) sampled from the posterior (images in [0, 1])."""
        x = images * 2 - 1
        if self.vae is None:
            return x
        post = self.vae.encode(x)
        post = getattr(post, "latent_dist", post)
        return post.sample(generator=generator) * _cfg_value(self.vae, "scaling_factor", 0.18215)

    # ---- the sampler ----
    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, height: int | None = None, width: int | None = None,
                 num_inference_steps: int = 50, guidance_scale: float = 7.5,
                 negative_prompt: str | list[str] | None = None, num_images_per_prompt: int = 1,
                 eta: float = 0.0, generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 prompt_embeds: torch.Tensor | None = None, negative_prompt_embeds: torch.Tensor | None = None,
                 output_type: str = "pt", guidance_rescale: float = 0.0,
                 image: torch.Tensor | None = None, strength: float = 0.8,
                 control_image: torch.Tensor | None = None, controlnet_conditioning_scale: float = 1.0,
                 guess_mode: bool = False, pooled_prompt_embeds: torch.Tensor | None = None,
                 negative_pooled_prompt_embeds: torch.Tensor | None = None,
                 original_size: tuple[int, int] | None = None, crops_coords_top_left: tuple[int, int] = (0, 0),
                 target_size: tuple[int, int] | None = None, class_labels: torch.Tensor | None = None,
                 progress: bool = False) -> PipelineOutput:
        """Sample images: text-to-image (default), img2img (``image``, ``strength``), ControlNet
        (``control_image``), SDXL micro-conditioning (``pooled_prompt_embeds`` + sizes), class-conditional
        pixel models (``class_labels``; CFG then uses label = num_classes as the null class)."""
        cfg = guidance_scale > 1.0
        embeds, pooled = self._embeddings(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds,
                                          pooled_prompt_embeds, negative_pooled_prompt_embeds, cfg,
                                          num_images_per_prompt)
        B = self._batch(prompt, prompt_embeds, class_labels) * num_images_per_prompt
        size = _cfg_value(self.unet, "sample_size", 32)
        height = height or size * self.vae_scale_factor
        width = width or size * self.vae_scale_factor
        shape = (B, _cfg_value(self.unet, "in_channels", 4), height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        s = self.scheduler
        s.set_timesteps(num_inference_steps)
        timesteps = s.timesteps
        if image is not None:                                     # SDEdit / img2img
            timesteps, latents = self._img2img_start(image, strength, num_inference_steps, B, generator)
        elif latents is None:
            latents = randn(shape, generator) * s.init_noise_sigma                # x_T, (B, C, h, w)
        else:
            latents = latents * s.init_noise_sigma
        added = self._sdxl_conditioning(pooled, original_size or (height, width), crops_coords_top_left,
                                        target_size or (height, width), cfg, B)
        control = None
        if control_image is not None:
            if self.controlnet is None:
                raise ConfigError("control_image needs a pipeline built with a controlnet")
            ci = control_image.repeat_interleave(num_images_per_prompt, 0) if control_image.shape[0] != B \
                else control_image
            if cfg and not guess_mode:
                ci = torch.cat([ci] * 2)
            control = dict(image=ci, scale=controlnet_conditioning_scale, guess_mode=guess_mode)
        labels = None
        if class_labels is not None:
            labels = class_labels.repeat_interleave(num_images_per_prompt)
            if cfg:
                labels = torch.cat([torch.full_like(labels, self._null_class()), labels])
        step_kw = self._step_kwargs(eta, generator)
        it = timesteps
        if progress:
            from tqdm import tqdm
            it = tqdm(timesteps, desc="sampling", leave=False)
        for t in it:
            eps = self.predict_noise(latents, t, embeds, guidance_scale, guidance_rescale, added, control, labels)
            latents = s.step(eps, t, latents, return_dict=False, **step_kw)[0]
        return PipelineOutput(images=self.decode(latents, output_type, generator), latents=latents)

    # ---- helpers of __call__ ----
    def _null_class(self) -> int:
        n = _cfg_value(self.unet, "num_class_embeds")
        if n is None:
            raise ConfigError("class_labels need a class-conditional UNet (num_class_embeds)")
        return n - 1

    @staticmethod
    def _batch(prompt: Any, prompt_embeds: torch.Tensor | None, class_labels: torch.Tensor | None) -> int:
        if prompt_embeds is not None:
            return prompt_embeds.shape[0]
        if class_labels is not None:
            return class_labels.shape[0]
        if prompt is None:
            return 1
        return 1 if isinstance(prompt, str) else len(prompt)

    def _embeddings(self, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, pooled, neg_pooled,
                    cfg: bool, n_per: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """[uncond; cond] text embeddings (and pooled embeddings) repeated per image."""
        if prompt_embeds is None and prompt is not None:
            prompt_embeds, u, p, pu = self.encode_prompt(prompt, negative_prompt)
            negative_prompt_embeds = u if negative_prompt_embeds is None else negative_prompt_embeds
            pooled = p if pooled is None else pooled
            neg_pooled = pu if neg_pooled is None else neg_pooled
        if prompt_embeds is None:
            return None, None
        rep = (lambda x: x.repeat_interleave(n_per, 0) if x is not None else None)  # noqa: E731
        prompt_embeds, negative_prompt_embeds = rep(prompt_embeds), rep(negative_prompt_embeds)
        pooled, neg_pooled = rep(pooled), rep(neg_pooled)
        if cfg:
            if negative_prompt_embeds is None and self.force_zeros_for_empty_prompt:
                negative_prompt_embeds = torch.zeros_like(prompt_embeds)
            if negative_prompt_embeds is None:
                if self.text_encoder is None:      # diffusers' default with no encoder: zeros are not "" —
                    raise ConfigError("guidance_scale > 1 with prompt_embeds needs negative_prompt_embeds "
                                      "(or a text encoder to embed the empty prompt)")
                _, negative_prompt_embeds, _, neg_pooled = self.encode_prompt([""] * prompt_embeds.shape[0])
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
            if pooled is not None:
                pooled = torch.cat([neg_pooled if neg_pooled is not None else torch.zeros_like(pooled), pooled])
        return prompt_embeds, pooled

    def _sdxl_conditioning(self, pooled: torch.Tensor | None, original_size, crops, target_size, cfg: bool,
                           B: int) -> dict | None:
        """Podell et al. 2023 sec. 2.2: time_ids = (h_orig, w_orig, c_top, c_left, h_tgt, w_tgt)."""
        if pooled is None:
            return None
        time_ids = torch.tensor([list(original_size) + list(crops) + list(target_size)], dtype=pooled.dtype)
        time_ids = time_ids.repeat(2 * B if cfg else B, 1)                        # (2B, 6)
        return {"text_embeds": pooled, "time_ids": time_ids}

    def _step_kwargs(self, eta: float, generator: torch.Generator | None) -> dict:
        """eta/generator only for samplers whose ``step`` takes them (as diffusers' prepare_extra_step_kwargs)."""
        params = inspect.signature(self.scheduler.step).parameters
        kw = {}
        if "eta" in params:
            kw["eta"] = eta
        if "generator" in params:
            kw["generator"] = generator
        return kw

    def _img2img_start(self, image: torch.Tensor, strength: float, n: int, B: int,
                       generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """SDEdit: skip the first (1 − strength)·n steps; x_τ = q(x_τ | E(image))."""
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength={strength} must be in [0, 1]")
        s = self.scheduler
        init_timestep = min(int(n * strength), n)
        t_start = max(n - init_timestep, 0)
        timesteps = s.timesteps[t_start * s.order:]
        if hasattr(s, "set_begin_index"):
            s.set_begin_index(t_start * s.order)
        z0 = self.encode(image, generator)
        if z0.shape[0] != B:
            z0 = z0.repeat_interleave(B // z0.shape[0], 0)
        noise = randn(z0.shape, generator)
        return timesteps, s.add_noise(z0, noise, timesteps[:1].repeat(B))
