"""Hugging Face CLIP folders in and out (``CLIPModel``: config.json + safetensors), and the text tower alone in
(``CLIPTextModel[WithProjection]``, e.g. a Stable Diffusion text_encoder/). The maths in clip.py never sees these
key names; this file is the whole mapping. LLaVA folders: llava.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, DataError
from .clip import CLIP, CLIPConfig, CLIPTextConfig, CLIPVisionConfig

Tensors = dict[str, torch.Tensor]

BLOCK_KEYS = {"layer_norm1": "attn_norm", "layer_norm2": "mlp_norm", "self_attn.q_proj": "attn.q_proj",
              "self_attn.k_proj": "attn.k_proj", "self_attn.v_proj": "attn.v_proj",
              "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.fc", "mlp.fc2": "mlp.proj"}
"""one transformers CLIPEncoderLayer sub-module -> ours (EncoderBlock)"""
TOP_KEYS = {"vision_model.embeddings.class_embedding": "visual.cls",
            "vision_model.embeddings.patch_embedding.weight": "visual.patch_embed.weight",
            "vision_model.embeddings.position_embedding.weight": "visual.pos",
            "vision_model.pre_layrnorm": "visual.pre_norm", "vision_model.post_layernorm": "visual.post_norm",
            "text_model.embeddings.token_embedding.weight": "text.tok_emb.weight",
            "text_model.embeddings.position_embedding.weight": "text.pos",
            "text_model.final_layer_norm": "text.final_norm",
            "visual_projection.weight": "visual_proj.weight", "text_projection.weight": "text_proj.weight",
            "logit_scale": "logit_scale"}
"""everything outside the encoder layers, transformers -> ours (prefixes of .weight/.bias included)"""
TOWERS = {"vision_model.encoder.layers.": "visual.blocks.", "text_model.encoder.layers.": "text.blocks."}
HF_ACTS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}
TOKENIZER_KEY = "frontierkit_tokenizer"
"""config.json key naming the kit tokenizer of an exported CLIP ("shapes"); absent: the folder has none here"""


def _rename(key: str, table: dict[str, str]) -> str | None:
    for a, b in table.items():
        if key == a or key.startswith(a + "."):
            return b + key[len(a):]
    return None


def key_from_hf(key: str) -> str | None:
    """A transformers CLIPModel parameter name -> ours (None for buffers such as position_ids)."""
    for hf_prefix, ours in TOWERS.items():
        if key.startswith(hf_prefix):
            layer, _, rest = key[len(hf_prefix):].partition(".")
            sub = _rename(rest, BLOCK_KEYS)
            return None if sub is None else f"{ours}{layer}.{sub}"
    return _rename(key, TOP_KEYS)


def key_to_hf(key: str) -> str:
    """Our parameter name -> transformers CLIPModel's."""
    for hf_prefix, ours in TOWERS.items():
        if key.startswith(ours):
            layer, _, rest = key[len(ours):].partition(".")
            return f"{hf_prefix}{layer}.{_rename(rest, {b: a for a, b in BLOCK_KEYS.items()})}"
    name = _rename(key, {b: a for a, b in TOP_KEYS.items()})
    if name is None:
        raise KeyError(key)
    return name


def _act(hf: dict[str, Any], where: str) -> str:
    act = hf.get("hidden_act", "quick_gelu")
    if act not in HF_ACTS:
        raise CheckpointError(f"{where}.hidden_act={act!r} is not supported; CLIP here runs "
                              f"{', '.join(HF_ACTS)}")
    return HF_ACTS[act]


def text_config_from_hf(t: dict[str, Any], where: str, eos_default: int = 2) -> CLIPTextConfig:
    """A transformers CLIPTextConfig dict (CLIPModel's ``text_config`` or a CLIPTextModel's config.json) -> ours."""
    eos = t.get("eos_token_id", eos_default)
    if not isinstance(eos, int):
        raise CheckpointError(f"{where}.eos_token_id={eos!r}: only a single end-of-text id is supported")
    return CLIPTextConfig(vocab_size=t.get("vocab_size", 49408), context_length=t.get("max_position_embeddings", 77),
                          width=t.get("hidden_size", 512), n_layers=t.get("num_hidden_layers", 12),
                          n_heads=t.get("num_attention_heads", 8), mlp_hidden=t.get("intermediate_size", 2048),
                          activation=_act(t, where), eps=t.get("layer_norm_eps", 1e-5), eos_token_id=eos)


def config_from_hf(hf: dict[str, Any]) -> CLIPConfig:
    """A transformers CLIPConfig dict -> ours."""
    v, t = hf.get("vision_config") or {}, hf.get("text_config") or {}
    vision = CLIPVisionConfig(image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 32),
                              in_channels=v.get("num_channels", 3), width=v.get("hidden_size", 768),
                              n_layers=v.get("num_hidden_layers", 12), n_heads=v.get("num_attention_heads", 12),
                              mlp_hidden=v.get("intermediate_size", 3072), activation=_act(v, "vision_config"),
                              eps=v.get("layer_norm_eps", 1e-5))
    text = text_config_from_hf(t, "text_config")
    tokenizer = "shapes" if hf.get(TOKENIZER_KEY) == "shapes" else "none"   # written by config_to_hf
    return CLIPConfig(vision=vision, text=text, embed_dim=hf.get("projection_dim", 512),
                      logit_scale_init=hf.get("logit_scale_init_value", 2.6592), tokenizer=tokenizer)


def vision_config_to_hf(v: CLIPVisionConfig) -> dict[str, Any]:
    """Our vision tower config -> a transformers CLIPVisionConfig dict."""
    return {"image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.in_channels,
            "hidden_size": v.width, "num_hidden_layers": v.n_layers, "num_attention_heads": v.n_heads,
            "intermediate_size": v.mlp_hidden, "hidden_act": v.activation, "layer_norm_eps": v.eps}


def config_to_hf(cfg: CLIPConfig) -> dict[str, Any]:
    """Our CLIPConfig -> a transformers CLIPConfig dict (``CLIPModel``)."""
    v, t = cfg.vision, cfg.text
    extra = {TOKENIZER_KEY: "shapes"} if _has_shapes_tokenizer(cfg) else {}
    return {**extra, "model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": cfg.embed_dim,
            "logit_scale_init_value": cfg.logit_scale_init,
            "vision_config": {**vision_config_to_hf(v), "projection_dim": cfg.embed_dim},
            "text_config": {"vocab_size": t.vocab_size, "max_position_embeddings": t.context_length,
                            "hidden_size": t.width, "num_hidden_layers": t.n_layers,
                            "num_attention_heads": t.n_heads, "intermediate_size": t.mlp_hidden,
                            "hidden_act": t.activation, "layer_norm_eps": t.eps, "eos_token_id": t.eos_token_id,
                            "projection_dim": cfg.embed_dim}}


def _has_shapes_tokenizer(cfg: CLIPConfig) -> bool:
    from .data import WordTokenizer
    tok = WordTokenizer()
    fits = cfg.text.vocab_size == tok.vocab_size and cfg.text.eos_token_id == tok.eos
    return cfg.tokenizer == "shapes" or (cfg.tokenizer == "auto" and fits)


def state_from_hf(hf: Tensors) -> Tensors:
    return {k2: v for k, v in hf.items() if (k2 := key_from_hf(k)) is not None}


def state_to_hf(state: Tensors) -> Tensors:
    return {key_to_hf(k): v.contiguous() for k, v in state.items()}


def read_hf_folder(path: str | Path) -> tuple[dict[str, Any], Tensors]:
    """(config.json, all tensors) of a Hugging Face folder (one or sharded safetensors files)."""
    from safetensors.torch import load_file

    p = Path(path)
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p} has no config.json; pass a Hugging Face model folder")
    files = sorted(p.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{p} has no *.safetensors weights (only safetensors folders are read; "
                              f"pickled .bin files are never unpickled)")
    tensors: Tensors = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return json.loads((p / "config.json").read_text()), tensors


def clip_from_hf(path: str | Path, hf: dict[str, Any] | None = None) -> CLIP:
    """A transformers ``CLIPModel`` folder -> our CLIP (fp32)."""
    meta, tensors = read_hf_folder(path)
    model = CLIP(config_from_hf(hf or meta))
    state = state_from_hf(tensors)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} is not a complete CLIPModel checkpoint (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model


def clip_to_hf(model: CLIP, path: str | Path) -> Path:
    """Write ``model`` as a transformers ``CLIPModel`` folder (config.json + model.safetensors)."""
    from safetensors.torch import save_file

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    (p / "config.json").write_text(json.dumps(config_to_hf(model.cfg), indent=2))
    save_file(state_to_hf(model.state_dict()), str(p / "model.safetensors"), metadata={"format": "pt"})
    return p


TEXT_ARCHITECTURES = ("CLIPTextModel", "CLIPTextModelWithProjection")
"""transformers classes of a lone CLIP text tower (a Stable Diffusion pipeline's text_encoder/)"""


def is_hf_clip_text(meta: dict[str, Any]) -> bool:
    """config.json of a transformers CLIPTextModel / CLIPTextModelWithProjection folder."""
    archs = meta.get("architectures") or []
    return meta.get("model_type") == "clip_text_model" or any(a in TEXT_ARCHITECTURES for a in archs)


def text_model_keys(tensors: Tensors) -> Tensors:
    """CLIPTextModel keys as CLIPModel names them: transformers 5 saves ``embeddings.*`` / ``encoder.*`` /
    ``final_layer_norm.*`` where earlier versions (and the hub's Stable Diffusion folders) wrote ``text_model.*``."""
    bare = ("embeddings.", "encoder.", "final_layer_norm.")
    return {f"text_model.{k}" if k.startswith(bare) else k: v for k, v in tensors.items()}


def clip_text_from_hf(path: str | Path):
    """A transformers CLIPTextModel[WithProjection] folder -> our CLIPTextEncoder (fp32), with the CLIP tokenizer
    of the folder or its diffusers sibling ``../tokenizer/`` (absent: encode_prompts says so).
    Same key mapping as CLIPModel's text half: text_model.* -> text.*, text_projection -> text_proj."""
    from ..config import ConfigError
    from .bpe import CLIPTokenizer
    from .clip_text import CLIPTextEncoder, CLIPTextEncoderConfig
    meta, tensors = read_hf_folder(path)
    if not is_hf_clip_text(meta):
        raise CheckpointError(f"{path}/config.json is a {meta.get('model_type')!r} model, not a CLIPTextModel")
    proj = tensors.get("text_projection.weight")
    try:
        cfg = CLIPTextEncoderConfig(text=text_config_from_hf(meta, "config", eos_default=49407),
                                    projection_dim=0 if proj is None else proj.shape[0])
    except ConfigError as e:
        raise CheckpointError(f"{path}/config.json does not describe a CLIP text tower here: {e}") from None
    model = CLIPTextEncoder(cfg)
    state = {k: v.float() for k, v in state_from_hf(text_model_keys(tensors)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} is not a complete CLIPTextModel checkpoint (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    try:
        model.tokenizer = CLIPTokenizer.from_folder(path, max_length=cfg.text.context_length)
    except DataError as e:                      # weights without a tokenizer still encode ids
        model.no_tokenizer = str(e)
    else:
        model.check_tokenizer(str(path))
    return model
