"""Training diffusion models with the kit's shared Trainer: the DDPM simple loss (Ho et al. 2020 eq. 14,
‖ε − ε_θ(√ᾱ x_0 + √(1−ᾱ) ε, t)‖², or its v / x_0 variants, Salimans & Ho 2022) on pixels (digits) or VAE
latents (shapes, Rombach et al. 2022 eq. 2), with condition dropout for classifier-free guidance (Ho &
Salimans 2022 Alg. 1); the KL autoencoder (Kingma & Welling 2014 ELBO, small KL weight as LDM's KL-reg);
ControlNet with the UNet frozen (Zhang et al. 2023 eq. 1: residuals of a trainable copy through zero convs)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import from_dict, require, to_dict
from ..errors import CheckpointError, ConfigError
from ..train import TrainConfig, Trainer
from .schedulers import DDPMScheduler
from .text import encode_all, load_text_encoder


@dataclass(frozen=True, kw_only=True)
class DiffusionModelConfig:
    width: int = 32
    """UNet base channels: block_out_channels = (width, 2·width)"""
    layers_per_block: int = 1
    """ResNet blocks per UNet level"""
    heads: int = 2
    """attention heads of the cross-attention blocks (first level; the second uses 2×)"""
    norm_groups: int = 8
    """GroupNorm groups"""
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon"
    """what the UNet predicts: ε (DDPM), v (Salimans & Ho 2022) or x_0"""
    num_train_timesteps: int = 1000
    """T of the forward process"""
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    """β schedule: linear (DDPM), scaled_linear (Stable Diffusion) or cosine (Improved DDPM)"""
    cond_dropout: float = 0.1
    """probability of dropping the class/caption during training (classifier-free guidance)"""
    vae_width: int = 16
    """stage=vae: channels of the VAE's first level (then 2·width)"""
    vae_levels: int = 2
    """stage=vae: resolution levels of the VAE; latents are S / 2^(levels−1) on a side"""
    vae_foreground_weight: float = 10.0
    """stage=vae: extra L1 weight on the shape's pixels (a shape covers ~5% of an image; unweighted, the
    decoder learns the background first and draws the shapes as blobs)"""
    vae_foreground_dilation: int = 2
    """stage=vae: the extra weight also covers the background within this many pixels of the shape (a cross's
    notches, a triangle's sides): weighted on the shape alone, filling the notches costs almost nothing"""
    vae_edge_weight: float = 1.0
    """stage=vae: weight of the L1 loss between the image gradients of x and D(z) (keeps edges and corners)"""

    def __post_init__(self) -> None:
        require(self.width >= 8 and self.width % self.norm_groups == 0, "model.width", self.width,
                f"must be >= 8 and a multiple of model.norm_groups={self.norm_groups}")
        require(self.layers_per_block >= 1, "model.layers_per_block", self.layers_per_block, "must be >= 1")
        require(self.num_train_timesteps >= 10, "model.num_train_timesteps", self.num_train_timesteps,
                "must be >= 10")
        require(0.0 <= self.cond_dropout < 1.0, "model.cond_dropout", self.cond_dropout, "must be in [0, 1)")
        require(self.vae_width >= 8 and self.vae_width % 8 == 0, "model.vae_width", self.vae_width,
                "must be a positive multiple of 8")
        require(1 <= self.vae_levels <= 4, "model.vae_levels", self.vae_levels, "must be in 1..4")
        require(self.vae_foreground_weight >= 0, "model.vae_foreground_weight", self.vae_foreground_weight,
                "must be >= 0")
        require(self.vae_foreground_dilation >= 0, "model.vae_foreground_dilation", self.vae_foreground_dilation,
                "must be >= 0")
        require(self.vae_edge_weight >= 0, "model.vae_edge_weight", self.vae_edge_weight, "must be >= 0")


@dataclass(frozen=True, kw_only=True)
class DiffusionDataConfig:
    name: Literal["digits", "shapes"] = "digits"
    """dataset: digits (8x8 grey, 10 classes) or shapes (RGB with captions)"""
    condition: Literal["none", "class", "text"] = "none"
    """unconditional, class labels (digit / shape) or captions (shapes only)"""
    upscale: int = 1
    """digits: bilinear upscaling (8 -> 8·upscale pixels)"""
    shapes_n: int = 2000
    """shapes: images generated (first quarter held out)"""
    shapes_size: int = 32
    """shapes: image side in pixels"""
    seed: int = 0
    """shapes generation seed"""
    vae: str = ""
    """a trained VAE run folder: the UNet then learns the VAE's latents (latent diffusion); empty = pixels"""
    text_encoder: str = ""
    """condition=text: a kit model folder tagged "text-encoder" (e.g. a CLIP run); empty = the shapes caption encoder"""

    def __post_init__(self) -> None:
        require(not (self.name == "digits" and self.condition == "text"), "data.condition", self.condition,
                "digits have no captions: use none or class")
        require(self.upscale >= 1, "data.upscale", self.upscale, "must be >= 1")
        require(not self.text_encoder or self.condition == "text", "data.text_encoder", self.text_encoder,
                "a text encoder needs data.condition=text (--condition text)")
        require(self.shapes_n >= 40, "data.shapes_n", self.shapes_n, "must be >= 40")


def default_train() -> TrainConfig:
    return TrainConfig(steps=1500, batch_size=64, lr=2e-3, warmup_steps=50, weight_decay=0.0, log_every=50,
                       beta2=0.99)


@dataclass(frozen=True, kw_only=True)
class DiffusionRunConfig:
    stage: Literal["unet", "vae"] = "unet"
    """what to train: the denoising UNet, or the KL autoencoder for latent diffusion (shapes)"""
    model: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    """UNet and noise schedule"""
    data: DiffusionDataConfig = field(default_factory=DiffusionDataConfig)
    """training data and conditioning"""
    train: TrainConfig = field(default_factory=default_train)
    """optimizer and loop"""

    def __post_init__(self) -> None:
        require(not (self.stage == "vae" and self.data.name != "shapes"), "stage", self.stage,
                "the VAE is trained on shapes: add --data.name shapes")


@dataclass(frozen=True, kw_only=True)
class ControlNetRunConfig:
    unet: str = ""
    """run folder of a trained text-conditioned (latent) shapes UNet; it stays frozen"""
    condition: Literal["outline", "mask"] = "outline"
    """the control image: the shape's outline (edges; Fill50K) or its filled foreground mask"""
    conditioning_scale: float = 1.0
    """scale of the ControlNet residuals at training time"""
    train: TrainConfig = field(default_factory=default_train)
    """optimizer and loop"""

    def __post_init__(self) -> None:
        require(bool(self.unet), "unet", self.unet, "name the text-to-image UNet run folder (--unet DIR)")


# ---------------------------------------------------------------------------------------------- pieces
def scheduler_config(m: DiffusionModelConfig) -> dict[str, Any]:
    """The diffusers-style scheduler config dict of a run (also written as scheduler_config.json)."""
    return {"num_train_timesteps": m.num_train_timesteps, "beta_schedule": m.beta_schedule,
            "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": m.prediction_type, "clip_sample": False,
            "timestep_spacing": "trailing"}


def num_classes(d: DiffusionDataConfig) -> int:
    return 10 if d.name == "digits" else 4


def unet_config(cfg: DiffusionRunConfig, in_channels: int, sample_size: int, cross_attention_dim: int | None = None):
    """The UNet of a run: 2 levels; for captions 3 levels with cross-attention (width of the text encoder's
    hidden states) at each and in the mid block, as Stable Diffusion: "at the top left" needs features that know
    where they are, and only the coarsest level (4×4 on 16×16 latents) sees the whole image; +1 null class for CFG."""
    from .models import UNetConfig
    m, d = cfg.model, cfg.data
    text = d.condition == "text"
    levels = 3 if text else 2
    return UNetConfig(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=(m.width,) + (2 * m.width,) * (levels - 1), layers_per_block=m.layers_per_block,
        down_block_types=("CrossAttnDownBlock2D" if text else "DownBlock2D",) * levels,
        up_block_types=("CrossAttnUpBlock2D" if text else "UpBlock2D",) * levels,
        mid_block_type="UNetMidBlock2DCrossAttn" if text else "UNetMidBlock2D",
        cross_attention_dim=cross_attention_dim if text else None,
        attention_head_dim=(m.heads,) + (2 * m.heads,) * (levels - 1), norm_num_groups=m.norm_groups,
        num_class_embeds=num_classes(d) + 1 if d.condition == "class" else None)


def vae_config(sample_size: int, width: int = 8, levels: int = 2):
    """The shapes VAE: ``levels`` levels (×2^(levels−1) down), 4 latent channels; channels (w, 2w, 2w, ...)."""
    from .models import VAEConfig
    channels = tuple(width * min(2 ** i, 2) for i in range(levels))
    return VAEConfig(in_channels=3, out_channels=3, block_out_channels=channels, layers_per_block=1,
                     down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
                     latent_channels=4, norm_num_groups=8, sample_size=sample_size, scaling_factor=1.0)


def load_vae(path: str | Path) -> nn.Module:
    """A trained VAE (our run folder, its model/ folder, or a diffusers AutoencoderKL folder)."""
    from ..models import open_model
    return open_model(path, kind="diffusion-vae").model.eval()


@torch.no_grad()
def encode_latents(vae: nn.Module, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """z = scaling_factor · mean of q(z|x) (the posterior mode, deterministic), images in [0, 1]."""
    out = [vae.encode(images[i:i + batch_size] * 2 - 1).mode() for i in range(0, len(images), batch_size)]
    return torch.cat(out) * vae.cfg.scaling_factor                          # (N, 4, S/4, S/4)


def training_tensors(d: DiffusionDataConfig, split: str = "train") -> tuple[torch.Tensor, ...]:
    """(x_0 in [−1, 1] or latents, condition) tensors: labels (N,) or caption embeddings (N, L, D)."""
    if d.name == "digits":
        from .data import digits_data
        x, y = digits_data(split, d.upscale)
        x = x * 2 - 1
        return (x, y) if d.condition == "class" else (x,)
    from .data import shapes_data
    s = shapes_data(split, d.shapes_n, d.shapes_size, d.seed)
    x = encode_latents(load_vae(d.vae), s.images) if d.vae else s.images * 2 - 1
    if d.condition == "class":
        return x, s.labels["shape"]
    if d.condition == "text":
        return x, encode_all(load_text_encoder(d.text_encoder), s.captions)   # (N, 4, h, w), (N, L, D)
    return (x,)


def _denoise_target(sched: DDPMScheduler, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, t, target): t ~ U{0..T−1}, ε ~ N(0, I), x_t from q(x_t|x_0) (DDPM eq. 4)."""
    t = torch.randint(0, sched.config.num_train_timesteps, (x0.shape[0],))
    noise = torch.randn_like(x0)
    return sched.add_noise(x0, noise, t), t, sched.training_target(x0, noise, t)


def _drop(cond: torch.Tensor, null: torch.Tensor, p: float) -> torch.Tensor:
    """Replace each example's condition by the null one with probability p (Ho & Salimans 2022 Alg. 1)."""
    if p <= 0:
        return cond
    keep = torch.rand(cond.shape[0]) >= p
    return torch.where(keep.view(-1, *([1] * (cond.ndim - 1))), cond, null.expand_as(cond))


def ddpm_loss(sched: DDPMScheduler, condition: str, p_drop: float, null: torch.Tensor | None):
    """loss_fn(unet, batch) for the Trainer: MSE to ε / v / x_0 with condition dropout."""
    def loss_fn(unet: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x0 = batch[0]
        xt, t, target = _denoise_target(sched, x0)
        if condition == "class":
            pred = unet(xt, t, None, class_labels=_drop(batch[1], null, p_drop))
        elif condition == "text":
            pred = unet(xt, t, _drop(batch[1], null, p_drop))
        else:
            pred = unet(xt, t, None)
        return F.mse_loss(pred, target)
    return loss_fn


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂x/∂y (B, C, S−1, S), ∂x/∂x (B, C, S, S−1)): forward differences along rows and columns."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def vae_loss(kl_weight: float = 1e-4, foreground_weight: float = 0.0, dilation: int = 0, edge_weight: float = 0.0):
    """KL-regularised autoencoder loss (LDM sec. 3, KL-reg): Σ w |x − D(z)|₁ + λ_e Σ |∇x − ∇D(z)|₁
    + λ KL(q(z|x) ‖ N(0, I)), z ~ q(z|x), w = 1 + foreground_weight on the shape's pixels dilated by ``dilation``
    (batch = (images, masks)). L1, the weight near the shape and the gradient term stand in for LDM's perceptual
    and patch-GAN losses, which keep edges: without them the small shapes come back as same-coloured blobs."""
    def loss_fn(vae: nn.Module, batch: tuple[torch.Tensor, ...]):
        x = batch[0] * 2 - 1                                                 # (B, 3, S, S)
        w: torch.Tensor | float = 1.0
        if len(batch) > 1:
            m = batch[1].unsqueeze(1).float()                                # (B, 1, S, S)
            if dilation:
                m = F.max_pool2d(m, 2 * dilation + 1, stride=1, padding=dilation)
            w = 1.0 + foreground_weight * m
        post = vae.encode(x)
        recon = vae.decode(post.sample())
        rec, kl = (w * (recon - x).abs()).mean(), post.kl().mean() / x[0].numel()
        edge = sum((a - b).abs().mean() for a, b in zip(image_gradients(recon), image_gradients(x)))
        return rec + edge_weight * edge + kl_weight * kl, {"recon": rec.detach(), "edge": edge.detach(),
                                                           "kl": kl.detach()}
    return loss_fn


def _write_run_files(out: Path, cfg: Any, sched_cfg: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True))
    if sched_cfg is not None:
        (out / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler", **sched_cfg},
                                                              indent=2))


# ---------------------------------------------------------------------------------------------- runs
def train_unet(cfg: DiffusionRunConfig, out: str | Path, *, tracker: Any = None, quiet: bool = True,
               resume: bool = False) -> nn.Module:
    """Train a pixel or latent UNet; writes ``<out>/model`` (diffusion-unet) and scheduler_config.json."""
    from ..data import TensorBatches
    from .models import UNet2DConditionModel
    out = Path(out)
    d = cfg.data
    if d.condition == "text" and d.name != "shapes":
        raise ConfigError("data.condition=text needs --data.name shapes")
    tensors = training_tensors(d)
    x0 = tensors[0]
    torch.manual_seed(cfg.train.seed)
    text_dim = tensors[1].shape[-1] if d.condition == "text" else None
    unet = UNet2DConditionModel(unet_config(cfg, x0.shape[1], x0.shape[-1], text_dim))
    sched = DDPMScheduler.from_config(scheduler_config(cfg.model))
    null = None
    if d.condition == "class":
        null = torch.tensor(num_classes(d))
    elif d.condition == "text":
        null = load_text_encoder(d.text_encoder)([""])[0]                    # (1, L, D): the empty prompt
    _write_run_files(out, cfg, scheduler_config(cfg.model))
    data = TensorBatches(*tensors, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    trainer = Trainer(unet, ddpm_loss(sched, d.condition, cfg.model.cond_dropout, null), data, cfg.train,
                      out=out, tracker=tracker, run_config=to_dict(cfg), model_config=unet.cfg.to_dict(),
                      quiet=quiet, progress_desc=f"diffusion unet {d.name}/{d.condition}")
    trainer.fit(resume=resume)
    return unet.eval()


def train_vae(cfg: DiffusionRunConfig, out: str | Path, *, tracker: Any = None, quiet: bool = True,
              resume: bool = False) -> nn.Module:
    """Train the shapes KL-VAE, then set scaling_factor = 1/std(z) (LDM sec. 4.3.2) and re-save ``<out>/model``."""
    from ..data import TensorBatches
    from ..models import save
    from .data import shapes_data
    from .models import AutoencoderKL
    out = Path(out)
    d = cfg.data
    s = shapes_data("train", d.shapes_n, d.shapes_size, d.seed)
    torch.manual_seed(cfg.train.seed)
    m = cfg.model
    vae = AutoencoderKL(vae_config(d.shapes_size, m.vae_width, m.vae_levels))
    with torch.no_grad():   # start q(z|x) narrow (σ ≈ 0.05): with log σ² = 0 the decoder first sees noise only
        vae.quant_conv.bias[vae.cfg.latent_channels:].fill_(-6.0)
    _write_run_files(out, cfg)
    data = TensorBatches(s.images, s.masks, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    loss = vae_loss(foreground_weight=m.vae_foreground_weight, dilation=m.vae_foreground_dilation,
                    edge_weight=m.vae_edge_weight)
    trainer = Trainer(vae, loss, data, cfg.train, out=out, tracker=tracker, run_config=to_dict(cfg),
                      model_config=vae.cfg.to_dict(), quiet=quiet, progress_desc="diffusion vae shapes")
    trainer.fit(resume=resume)
    vae.eval()
    z = encode_latents(vae, s.images[:512])
    vae.cfg = replace(vae.cfg, scaling_factor=float(1.0 / z.std()))
    save(vae, out / "model", config=vae.cfg.to_dict(), run=to_dict(cfg), step=trainer.step)
    return vae


def load_unet_run(path: str | Path) -> tuple[nn.Module, DiffusionRunConfig]:
    """(UNet, its run config) from a ``frontier diffusion train`` folder."""
    from ..models import open_model
    p = Path(path)
    loaded = open_model(p, kind="diffusion-unet")
    if not loaded.run:
        raise CheckpointError(f"{p} holds a UNet without its training run config; pass a "
                              "`frontier diffusion train` run folder")
    return loaded.model.eval(), from_dict(DiffusionRunConfig, loaded.run)


def controlnet_loss(unet: nn.Module, sched: DDPMScheduler, null: torch.Tensor, p_drop: float, scale: float):
    """loss_fn(controlnet, batch): the frozen UNet's ε-loss with the ControlNet residuals added."""
    def loss_fn(controlnet: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x0, emb, cond_img = batch
        xt, t, target = _denoise_target(sched, x0)
        emb = _drop(emb, null, p_drop)
        down, mid = controlnet(xt, t, encoder_hidden_states=emb, controlnet_cond=cond_img, conditioning_scale=scale)
        pred = unet(xt, t, emb, down_block_additional_residuals=down, mid_block_additional_residual=mid)
        return F.mse_loss(pred, target)
    return loss_fn


def train_controlnet(cfg: ControlNetRunConfig, out: str | Path, *, tracker: Any = None, quiet: bool = True,
                     resume: bool = False) -> nn.Module:
    """Train a ControlNet (outline or mask → filled shape) on a frozen text-to-image shapes UNet."""
    from ..data import TensorBatches
    from .data import shapes_data
    from .models import ControlNetModel
    out = Path(out)
    unet, ucfg = load_unet_run(cfg.unet)
    if ucfg.data.name != "shapes" or ucfg.data.condition != "text":
        raise ConfigError(f"--unet {cfg.unet} was trained on {ucfg.data.name}/{ucfg.data.condition}; "
                          "ControlNet needs a shapes text-to-image UNet (data.condition=text)")
    unet.requires_grad_(False)
    x0, emb = training_tensors(ucfg.data)
    s = shapes_data("train", ucfg.data.shapes_n, ucfg.data.shapes_size, ucfg.data.seed)
    factor = s.images.shape[-1] // x0.shape[-1]
    channels = {1: (16,), 2: (16, 32), 4: (16, 32, 32), 8: (16, 32, 32, 32)}.get(factor)
    if channels is None:
        raise ConfigError(f"image/latent size ratio {factor} is not a power of two up to 8")
    torch.manual_seed(cfg.train.seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels)
    sched = DDPMScheduler.from_config(scheduler_config(ucfg.model))
    null = load_text_encoder(ucfg.data.text_encoder)([""])[0]                # (1, L, D)
    _write_run_files(out, cfg, scheduler_config(ucfg.model))
    data = TensorBatches(x0, emb, s.control(cfg.condition), batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    trainer = Trainer(controlnet, controlnet_loss(unet, sched, null, ucfg.model.cond_dropout,
                                                  cfg.conditioning_scale),
                      data, cfg.train, out=out, tracker=tracker, run_config=to_dict(cfg),
                      model_config=controlnet.cfg.to_dict(), quiet=quiet, progress_desc="diffusion controlnet")
    trainer.fit(resume=resume)
    return controlnet.eval()
