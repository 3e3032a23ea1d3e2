"""Opening a sampling pipeline (Rombach et al. 2022: UNet + noise schedule + VAE + text encoder τ_θ) from a
folder: a ``frontier diffusion train`` run, a diffusers pipeline folder (``model_index.json`` with ``unet/``,
``vae/``, ``scheduler/``; its ``unet/`` opens the whole pipeline), or a single diffusers UNet folder
(+ ``scheduler_config.json`` when present). A text-conditioned diffusers UNet reads prompts through
``text_encoder=`` a kit text-encoder folder when given, else the pipeline folder's own ``text_encoder/``
(transformers' CLIPTextModel + ``tokenizer/``, opened through the model registry by its "text-encoder" tag: the
multimodal area's ``clip-text`` kind, not imported here) — an SDXL folder's two (``text_encoder/`` +
``text_encoder_2/``, penultimate states) — else the shapes caption encoder when its width fits."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..errors import CheckpointError, ConfigError

DEFAULT_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                     "beta_end": 0.012, "prediction_type": "epsilon", "clip_sample": False,
                     "timestep_spacing": "leading", "steps_offset": 1}
"""Stable Diffusion's schedule, used for a lone diffusers UNet folder without scheduler_config.json"""


@dataclass
class Parts:
    """What a pipeline needs, read from one folder."""
    unet: nn.Module
    scheduler_config: dict[str, Any]
    vae: nn.Module | None
    text_encoder: Callable | None
    condition: str
    """none / class / text: what the UNet is conditioned on"""
    run: Any = None
    """the DiffusionRunConfig of a kit run (None for diffusers folders)"""
    force_zeros_for_empty_prompt: bool = False
    """an SDXL pipeline's rule for a missing negative prompt (model_index.json)"""


def _meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    except json.JSONDecodeError:
        return {}


def is_diffusers_pipeline(path: str | Path) -> bool:
    """A diffusers pipeline layout: model_index.json or a unet/ model folder."""
    p = Path(path)
    return (p / "model_index.json").is_file() or (p / "unet" / "config.json").is_file()


def is_diffusers_unet(path: str | Path) -> bool:
    """A single diffusers UNet2DConditionModel folder (written by diffusers or ``frontier diffusion export``)."""
    return _meta(Path(path)).get("_class_name") == "UNet2DConditionModel"


def condition_of(unet: nn.Module) -> str:
    """text when the UNet has cross-attention, class with class embeddings, else none."""
    cfg = unet.cfg
    blocks = tuple(cfg.down_block_types) + tuple(cfg.up_block_types) + (cfg.mid_block_type or "",)
    if cfg.cross_attention_dim is not None and any("CrossAttn" in b for b in blocks):
        return "text"
    return "class" if cfg.num_class_embeds else "none"


def text_encoder_for(unet: nn.Module, path: str = "", own: Path | None = None) -> Callable:
    """The text encoder of a diffusers UNet: the kit folder ``path`` (tag "text-encoder"), else the pipeline's
    own ``text_encoder/`` folder ``own`` (through the registry), else the shapes caption encoder when the UNet's
    cross_attention_dim fits it; the widths must agree."""
    from .text import CaptionEncoder, load_text_encoder
    width = unet.cfg.cross_attention_dim
    has_own = own is not None and (own / "config.json").is_file()
    source = path or (str(own) if has_own else "")
    if not source and width != CaptionEncoder().dim:
        raise ConfigError(f"this UNet reads text of width {width}; pass --text-encoder DIR (a kit model tagged "
                          "text-encoder, e.g. a CLIP run, whose hidden states have that width) or a diffusers "
                          "pipeline folder with its text_encoder/ and tokenizer/")
    enc = load_text_encoder(source)
    got = enc([""])[0].shape[-1]
    if got != width:
        what = f"--text-encoder {path}" if path else f"the pipeline's text encoder {own}"
        raise ConfigError(f"{what} gives hidden states of width {got}; the UNet's cross-attention reads {width}")
    return enc


def sdxl_text_encoder(unet: nn.Module, root: Path) -> Callable:
    """SDXL's τ_θ (Podell et al. 2023 sec. 2.1): the penultimate hidden states of ``text_encoder/`` (CLIP ViT-L)
    and ``text_encoder_2/`` (OpenCLIP bigG, with projection) concatenated on the channel axis, pooled from the
    second — as diffusers' StableDiffusionXLPipeline.encode_prompt."""
    from .pipelines import DualTextEncoder
    from .text import RegistryTextEncoder
    if not (root / "text_encoder" / "config.json").is_file():
        raise ConfigError(f"{root} has text_encoder_2/ but no text_encoder/: an SDXL refiner (one encoder, "
                          "aesthetic-score time ids) is not supported; pass prompt embeddings in Python instead")
    enc = DualTextEncoder(RegistryTextEncoder(str(root / "text_encoder"), hidden_layer=-2),
                          RegistryTextEncoder(str(root / "text_encoder_2"), hidden_layer=-2))
    hidden, pooled = enc([""])
    width = unet.cfg.cross_attention_dim
    if hidden.shape[-1] != width:
        raise ConfigError(f"the SDXL text encoders of {root} give hidden states of width {hidden.shape[-1]} "
                          f"(text_encoder/ + text_encoder_2/ concatenated); the UNet's cross-attention reads {width}")
    cfg = unet.cfg
    if cfg.addition_embed_type == "text_time":
        want = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        if pooled.shape[-1] != want:
            raise ConfigError(f"{root}/text_encoder_2 pools to width {pooled.shape[-1]}; the UNet's text_time "
                              f"embedding expects {want} (projection_class_embeddings_input_dim − 6 · "
                              "addition_time_embed_dim)")
    return enc


def _scheduler_config(*candidates: Path) -> dict[str, Any]:
    for f in candidates:
        if f.is_file():
            return json.loads(f.read_text())
    return dict(DEFAULT_SCHEDULER)


def open_parts(path: str | Path, text_encoder: str = "") -> Parts:
    """UNet, schedule, VAE and text encoder (``text_encoder``, else a pipeline folder's own text_encoder/) of a
    kit run folder or a diffusers (pipeline or UNet) folder."""
    from .convert import from_diffusers
    p = Path(path)
    if is_diffusers_unet(p) and (p.parent / "model_index.json").is_file():
        return open_parts(p.parent, text_encoder)        # a pipeline's unet/: sample with the whole pipeline
    index: dict[str, Any] = {}
    if is_diffusers_pipeline(p):
        if not (p / "unet" / "config.json").is_file():
            raise CheckpointError(f"{p} is a diffusers pipeline folder without unet/config.json")
        unet = from_diffusers(p / "unet")
        vae = from_diffusers(p / "vae") if (p / "vae" / "config.json").is_file() else None
        sched = _scheduler_config(p / "scheduler" / "scheduler_config.json", p / "scheduler_config.json")
        own = p / "text_encoder"
        if (p / "model_index.json").is_file():
            index = json.loads((p / "model_index.json").read_text())
    elif is_diffusers_unet(p):
        unet, vae, own = from_diffusers(p), None, None
        sched = _scheduler_config(p / "scheduler_config.json", p.parent / "scheduler" / "scheduler_config.json")
    else:
        return _open_run(p, text_encoder)
    cond = condition_of(unet)
    xl = own is not None and (p / "text_encoder_2" / "config.json").is_file()
    text = None
    if cond == "text":
        text = sdxl_text_encoder(unet, p) if xl and not text_encoder else text_encoder_for(unet, text_encoder, own)
    zeros = index.get("force_zeros_for_empty_prompt", index.get("_class_name", "").startswith("StableDiffusionXL"))
    return Parts(unet=unet, scheduler_config=sched, vae=vae, text_encoder=text, condition=cond,
                 force_zeros_for_empty_prompt=bool(zeros))


def _open_run(p: Path, text_encoder: str) -> Parts:
    from .text import load_text_encoder
    from .train import load_unet_run, load_vae, scheduler_config
    unet, cfg = load_unet_run(p)
    d = cfg.data
    text = load_text_encoder(text_encoder or d.text_encoder) if d.condition == "text" else None
    return Parts(unet=unet, scheduler_config=scheduler_config(cfg.model), vae=load_vae(d.vae) if d.vae else None,
                 text_encoder=text, condition=d.condition, run=cfg)


def export_pipeline(run: str | Path, out: str | Path) -> Path:
    """A kit UNet run as a diffusers pipeline folder: model_index.json, unet/, vae/ (latent runs), scheduler/."""
    from .convert import DIFFUSERS_VERSION, to_diffusers
    from .schedulers import DDPMScheduler
    parts = _open_run(Path(run), "")
    out = Path(out)
    to_diffusers(parts.unet, out / "unet")
    index: dict[str, Any] = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
                             "unet": ["diffusers", "UNet2DConditionModel"],
                             "scheduler": ["diffusers", "DDPMScheduler"]}
    if parts.vae is not None:
        to_diffusers(parts.vae, out / "vae")
        index["vae"] = ["diffusers", "AutoencoderKL"]
    DDPMScheduler.from_config(parts.scheduler_config).save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out
