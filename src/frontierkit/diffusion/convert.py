"""diffusers folders in and out: ``from_diffusers(path)`` reads a folder written by diffusers' ``save_pretrained``
(config.json + diffusion_pytorch_model.safetensors) of a ``UNet2DConditionModel`` (Rombach et al. 2022; SDXL,
Podell et al. 2023), ``AutoencoderKL`` or ``ControlNetModel`` (Zhang et al. 2023) into the kit's module, and
``to_diffusers(module, path)`` writes one back. Our module names equal diffusers' except inside the attention
layers, which are the core's ``EncoderBlock``/``EncoderAttention``: this file is the whole mapping
(no diffusers import: the format is plain safetensors + JSON).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

Tensors = dict[str, torch.Tensor]

WEIGHTS = "diffusion_pytorch_model.safetensors"
CONFIG = "config.json"
DIFFUSERS_VERSION = "0.42.1"
"""written into config.json's _diffusers_version (the layout matches diffusers >= 0.22)"""

BLOCK_KEYS = {"norm1": "attn_norm", "norm2": "cross_norm", "norm3": "mlp_norm",
              "attn1.to_q": "attn.q_proj", "attn1.to_k": "attn.k_proj", "attn1.to_v": "attn.v_proj",
              "attn1.to_out.0": "attn.out_proj", "attn2.to_q": "cross_attn.q_proj", "attn2.to_k": "cross_attn.k_proj",
              "attn2.to_v": "cross_attn.v_proj", "attn2.to_out.0": "cross_attn.out_proj",
              "ff.net.0.proj": "mlp.gate_up", "ff.net.2": "mlp.down"}
"""a diffusers BasicTransformerBlock sub-module -> ours (frontierkit.nn.EncoderBlock)"""
VAE_ATTN_KEYS = {"group_norm": "group_norm", "to_q": "attn.q_proj", "to_k": "attn.k_proj", "to_v": "attn.v_proj",
                 "to_out.0": "attn.out_proj"}
"""a diffusers VAE mid-block Attention sub-module -> ours (SpatialSelfAttention)"""
LEGACY_VAE_ATTN_KEYS = {"query": "attn.q_proj", "key": "attn.k_proj", "value": "attn.v_proj",
                        "proj_attn": "attn.out_proj"}
"""diffusers < 0.14 names of the same (still found in old SD 1.x VAE folders)"""

_BLOCK = re.compile(r"^(.*\.transformer_blocks\.\d+\.)(.+)\.(weight|bias)$")
_VAE_ATTN = re.compile(r"^((?:encoder|decoder)\.mid_block\.attentions\.\d+\.)(.+)\.(weight|bias)$")


def _kinds() -> dict[str, tuple[type, type]]:
    from .models.configs import ControlNetConfig, UNetConfig, VAEConfig
    from .models.controlnet import ControlNetModel
    from .models.unet_2d_condition import UNet2DConditionModel
    from .models.vae import AutoencoderKL
    return {"UNet2DConditionModel": (UNetConfig, UNet2DConditionModel),
            "AutoencoderKL": (VAEConfig, AutoencoderKL),
            "ControlNetModel": (ControlNetConfig, ControlNetModel)}


def _swap_halves(w: torch.Tensor) -> torch.Tensor:
    """diffusers' GEGLU proj rows are [value; gate], ours [gate; value] (an involution)."""
    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def key_to_ours(key: str) -> str:
    """One diffusers state-dict key -> ours."""
    m = _BLOCK.match(key)
    if m and m.group(2) in BLOCK_KEYS:
        return f"{m.group(1)}{BLOCK_KEYS[m.group(2)]}.{m.group(3)}"
    m = _VAE_ATTN.match(key)
    if m:
        table = {**VAE_ATTN_KEYS, **LEGACY_VAE_ATTN_KEYS}
        if m.group(2) in table:
            return f"{m.group(1)}{table[m.group(2)]}.{m.group(3)}"
    return key


def key_to_diffusers(key: str) -> str:
    """One of our state-dict keys -> diffusers'."""
    m = _BLOCK.match(key)
    inverse = {v: k for k, v in BLOCK_KEYS.items()}
    if m and m.group(2) in inverse:
        return f"{m.group(1)}{inverse[m.group(2)]}.{m.group(3)}"
    m = _VAE_ATTN.match(key)
    inverse = {v: k for k, v in VAE_ATTN_KEYS.items()}
    if m and m.group(2) in inverse:
        return f"{m.group(1)}{inverse[m.group(2)]}.{m.group(3)}"
    return key


def state_to_ours(state: Tensors) -> Tensors:
    """A diffusers state dict (UNet, VAE or ControlNet) in our names and layouts."""
    out = {}
    for key, value in state.items():
        new = key_to_ours(key)
        if new.endswith("mlp.gate_up.weight") or new.endswith("mlp.gate_up.bias"):
            value = _swap_halves(value)
        if ".attn." in new and "mid_block.attentions" in new and value.ndim == 4:
            value = value[:, :, 0, 0]                            # 1x1 conv attention projections (legacy)
        out[new] = value
    return out


def state_to_diffusers(state: Tensors) -> Tensors:
    """Our state dict in diffusers' names and layouts."""
    out = {}
    for key, value in state.items():
        if key.endswith("mlp.gate_up.weight") or key.endswith("mlp.gate_up.bias"):
            value = _swap_halves(value)
        out[key_to_diffusers(key)] = value.detach().contiguous()
    return out


def read_config(path: Path) -> dict[str, Any]:
    """config.json of a diffusers model folder (pipeline folders get a pointer to their sub-folders)."""
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is not a folder; pass a diffusers model folder (config.json + {WEIGHTS})")
    if (path / "model_index.json").is_file():
        subs = [p.name for p in sorted(path.iterdir()) if (p / CONFIG).is_file()]
        raise CheckpointError(f"{path} is a diffusers pipeline folder; pass one of its model folders "
                              f"({', '.join(subs)}), e.g. {path / 'unet'}")
    if not (path / CONFIG).is_file():
        raise CheckpointError(f"{path} has no {CONFIG}; pass a folder written by diffusers' save_pretrained")
    try:
        return json.loads((path / CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path / CONFIG} is not valid JSON ({e})") from None


def _read_weights(path: Path) -> Tensors:
    """The folder's weights: one safetensors file, a sharded set (``.index.json``) or an fp16/bf16 variant."""
    from safetensors.torch import load_file
    stem = WEIGHTS.removesuffix(".safetensors")
    for variant in ("", ".fp16", ".bf16"):
        single = path / f"{stem}{variant}.safetensors"
        names = (f"{stem}.safetensors.index{variant}.json", f"{stem}{variant}.safetensors.index.json")
        index = next((path / n for n in names if (path / n).is_file()), path / "-")
        if single.is_file():
            return load_file(str(single))
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return {k: v for shard in shards for k, v in load_file(str(path / shard)).items()}
    files = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".safetensors", ".ckpt"))
    found = ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "") if files else "none"
    raise CheckpointError(f"{path} has no {WEIGHTS} (weight files found: {found}); re-save it with diffusers' "
                          f"save_pretrained(safe_serialization=True) (pickled .bin files are not read)")


def config_from_diffusers(meta: dict[str, Any]):
    """(config, module class) for a diffusers config.json dict."""
    name = meta.get("_class_name")
    kinds = _kinds()
    if name not in kinds:
        raise CheckpointError(f"config.json has _class_name={name!r}; from_diffusers reads "
                              f"{', '.join(kinds)} folders")
    cfg_cls, model_cls = kinds[name]
    meta = dict(meta)
    if not _has_cross_attention(meta):
        meta["cross_attention_dim"] = None           # diffusers insists on an int; it is unused without attention
    try:
        return cfg_cls.from_dict(meta), model_cls
    except ConfigError as e:
        raise ConfigError(f"{name} config: {e}") from None


def _has_cross_attention(meta: dict[str, Any]) -> bool:
    if meta.get("_class_name") == "AutoencoderKL":
        return True                                  # (no such key)
    types = list(meta.get("down_block_types") or []) + list(meta.get("up_block_types") or [])
    return any("CrossAttn" in t for t in types) or meta.get("mid_block_type", "UNetMidBlock2DCrossAttn") \
        == "UNetMidBlock2DCrossAttn"


def from_diffusers(path: str | Path) -> nn.Module:
    """A diffusers UNet2DConditionModel / AutoencoderKL / ControlNetModel folder -> our module, in eval mode."""
    path = Path(path)
    meta = read_config(path)
    cfg, model_cls = config_from_diffusers(meta)
    model = model_cls(cfg)
    state = state_to_ours(_read_weights(path))
    load_state(model, state, path)
    return model.eval()


def load_state(model: nn.Module, state: Tensors, path: Path | str) -> None:
    """Load ``state`` (our names) into ``model``, failing with one line naming the first mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise CheckpointError(f"{path}: the weights do not fit {type(model).__name__}({model.cfg.__class__.__name__}) "
                              f"(missing: {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected: "
                              f"{extra[:3]}{'...' if len(extra) > 3 else ''})")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise CheckpointError(f"{path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, the config gives "
                              f"{tuple(own[bad[0]].shape)}")
    model.load_state_dict(state)


def diffusers_config(module: nn.Module) -> dict[str, Any]:
    """The diffusers config.json dict of one of our modules."""
    cfg = getattr(module, "cfg", None)
    name = next((n for n, (c, m) in _kinds().items() if isinstance(module, m)), None)
    if name is None or cfg is None:
        raise CheckpointError(f"to_diffusers writes UNet2DConditionModel, AutoencoderKL or ControlNetModel modules, "
                              f"not {type(module).__name__}")
    d = {"_class_name": name, "_diffusers_version": DIFFUSERS_VERSION, **cfg.to_dict()}
    if name == "ControlNetModel" and d.get("dropout") == 0.0:
        del d["dropout"]                                         # (not a ControlNetModel argument in diffusers)
    if d.get("cross_attention_dim", 0) is None:
        d["cross_attention_dim"] = cfg.block_out_channels[-1]   # diffusers needs an int; unused without attention
    return d


def to_diffusers(module: nn.Module, path: str | Path) -> Path:
    """Write ``module`` as a diffusers folder (config.json + diffusion_pytorch_model.safetensors) that
    diffusers' ``from_pretrained`` loads."""
    from safetensors.torch import save_file
    path = Path(path)
    cfg = diffusers_config(module)
    path.mkdir(parents=True, exist_ok=True)
    save_file(state_to_diffusers(module.state_dict()), str(path / WEIGHTS), metadata={"format": "pt"})
    (path / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")
    return path
