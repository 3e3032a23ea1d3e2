"""LLaVA: visual instruction tuning (Liu et al. 2023, "Visual Instruction Tuning"; LLaVA-1.5, Liu et al.
2023b, "Improved Baselines with Visual Instruction Tuning").

H_v = W · Z_v (§4.1, eq. 1): CLIP patch features Z_v from a chosen vision layer (``feature_layers``; CLS
dropped under "default", kept under "full") go through a 2-layer GELU MLP (LLaVA-1.5 §3.2) into the LLM's
embedding space, and replace the image placeholder tokens of the prompt. The LLM is the kit's decoder
Transformer, built through the model registry (``models.build("llm", ...)``), never imported.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..config import from_dict, require, to_dict
from ..errors import CheckpointError, DataError
from ..nn import prompt_positions
from .clip import CLIPVisionConfig, VisionTower


@dataclass(frozen=True, kw_only=True)
class LlavaConfig:
    vision: CLIPVisionConfig = field(default_factory=CLIPVisionConfig)
    """the CLIP vision tower"""
    llm: dict = field(default_factory=dict)
    """the language model's config (an ``llm`` kind TransformerConfig dict)"""
    feature_layers: tuple[int, ...] = (-2,)
    """vision hidden states fed to the projector (index into [embeddings, block 1, ..., block L]); several are
    concatenated along the feature axis"""
    select: Literal["default", "full"] = "default"
    """"default" drops the [CLS] token, "full" keeps it"""
    image_token_id: int = 3
    """the placeholder id that image features replace, one per feature token"""
    projector_bias: bool = True
    """biases in the projector's two linear layers"""

    def __post_init__(self) -> None:
        n = self.vision.n_layers + 1
        require(len(self.feature_layers) > 0 and all(-n <= i < n for i in self.feature_layers),
                "model.feature_layers", self.feature_layers, f"each must index one of the {n} vision hidden states")
        require(bool(self.llm) and "d_model" in self.llm, "model.llm", self.llm,
                "must be an llm TransformerConfig table (with d_model, vocab_size, ...)")
        require(0 <= self.image_token_id < int(self.llm.get("vocab_size", 0)), "model.image_token_id",
                self.image_token_id, "must be a token id of the LLM's vocabulary")

    @property
    def n_image_tokens(self) -> int:
        """Feature tokens per image: the patches, plus [CLS] under "full"."""
        return self.vision.n_patches + (self.select == "full")


class Projector(nn.Module):
    """The vision-language connector W (LLaVA-1.5 §3.2): Linear -> GELU -> Linear."""

    def __init__(self, vision_dim: int, llm_dim: int, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, llm_dim, bias=bias)
        self.fc2 = nn.Linear(llm_dim, llm_dim, bias=bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(z)))                                   # (B, N, D)


def lm_forward(lm: nn.Module, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor | None = None,
               cache: list | None = None) -> torch.Tensor:
    """The kit Transformer run on input embeddings x (B, T, C) instead of ids -> logits (B, T, V)."""
    return lm(None, positions, valid, cache, inputs_embeds=x)                  # (B, T, V)


class Llava(nn.Module):
    """Image (B, C, S, S) + prompt ids (B, T) holding ``n_image_tokens`` placeholders -> logits (B, T, V)."""

    def __init__(self, cfg: LlavaConfig, llm: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionTower(cfg.vision)
        self.projector = Projector(cfg.vision.width * len(cfg.feature_layers), int(llm.cfg.d_model),
                                   cfg.projector_bias)
        self.llm = llm

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """H_v = W(Z_v), eq. (1): selected vision layers (CLS dropped under "default") -> (B, N, D)."""
        hidden = self.vision.hidden_states(pixels)                            # L+1 x (B, 1+P, W)
        z = torch.cat([hidden[i] for i in self.cfg.feature_layers], dim=-1)    # (B, 1+P, W*k)
        if self.cfg.select == "default":
            z = z[:, 1:]                                                       # (B, P, W*k)
        return self.projector(z)                                               # (B, N, D)

    def embed(self, ids: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the image placeholders replaced, in order, by the image features."""
        x = self.llm.tok_emb(ids)                                              # (B, T, D)
        slots = ids == self.cfg.image_token_id                                 # (B, T)
        n_slots = int(slots.sum())
        if pixels is None:
            if n_slots:
                raise DataError(f"the prompt holds {n_slots} image tokens (id {self.cfg.image_token_id}) but no "
                                f"image was given")
            return x
        feats = self.image_features(pixels).to(x.dtype)                        # (B, N, D)
        if n_slots != feats.shape[0] * feats.shape[1]:
            raise DataError(f"the prompts hold {n_slots} image tokens but the images give {feats.shape[0]} x "
                            f"{feats.shape[1]} features; put {feats.shape[1]} image tokens (id "
                            f"{self.cfg.image_token_id}) in each prompt")
        return x.masked_scatter(slots[..., None], feats.reshape(-1, feats.shape[-1]))  # (B, T, D)

    def forward(self, ids: torch.Tensor, pixels: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) (left-padded when ``valid`` marks pads) -> next-token logits (B, T, V)."""
        valid = torch.ones_like(ids, dtype=torch.bool) if valid is None else valid.bool()
        return lm_forward(self.llm, self.embed(ids, pixels), prompt_positions(valid), valid)


def llava_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Autoregressive loss on the answer tokens only (Liu et al. §4.2): CE(logits_t, labels_{t+1}), -100 ignored."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


@torch.inference_mode()
def generate(model: Llava, ids: torch.Tensor, pixels: torch.Tensor | None, max_new_tokens: int,
             valid: torch.Tensor | None = None, stop_tokens: tuple[int, ...] = (), pad_id: int = 0) -> torch.Tensor:
    """Greedy decoding with a KV cache; ``ids`` (B, T) left-padded (``valid`` False on pads) -> (B, T + n)."""
    model.eval()
    b, t = ids.shape
    valid = torch.ones_like(ids, dtype=torch.bool) if valid is None else valid.bool()
    positions = prompt_positions(valid)                                        # (B, T)
    cache = model.llm.new_cache(b, t + max_new_tokens)
    logits = lm_forward(model.llm, model.embed(ids, pixels), positions, valid, cache)[:, -1]  # (B, V)
    pos, running, new = positions[:, -1:], torch.ones(b, dtype=torch.bool), []
    for _ in range(max_new_tokens):
        tok = torch.where(running, logits.argmax(-1), torch.full((b,), pad_id))  # (B,)
        new.append(tok)
        running &= ~torch.isin(tok, torch.tensor(list(stop_tokens), dtype=torch.long))
        if not bool(running.any()):
            break
        pos = pos + 1
        logits = lm_forward(model.llm, model.llm.tok_emb(tok[:, None]), pos, None, cache)[:, -1]  # (B, V)
    return torch.cat([ids, torch.stack(new, 1)], 1)                           # (B, T + n)


def build_llava(config: dict[str, Any]) -> Llava:
    """An untrained Llava from its config dict (the LLM through the model registry)."""
    from .. import models
    cfg = from_dict(LlavaConfig, config, prefix="model.")
    return Llava(cfg, models.build("llm", cfg.llm))


# ---- Hugging Face LlavaForConditionalGeneration folders (CLIP vision tower + Llama text) ----

def _strip(key: str) -> str:
    """Old and new transformers layouts -> one: 'vision_tower.X', 'multi_modal_projector.X', 'llm.model.X',
    'llm.lm_head.weight'."""
    key = key.removeprefix("model.")
    key = key.replace("vision_tower.vision_model.", "vision_tower.")
    if key.startswith("language_model.model.") or key.startswith("language_model.lm_head"):
        return "llm." + key.removeprefix("language_model.")
    if key.startswith("language_model."):
        return "llm.model." + key.removeprefix("language_model.")
    if key.startswith("lm_head."):
        return "llm." + key
    return key


def llava_from_hf(path: str | Path) -> Llava:
    """A transformers ``LlavaForConditionalGeneration`` folder (CLIP vision + Llama-family text) -> our Llava."""
    from .. import models
    from .convert import config_from_hf, read_hf_folder, state_from_hf

    meta, tensors = read_hf_folder(path)
    if meta.get("vision_config", {}).get("model_type", "clip_vision_model") != "clip_vision_model":
        raise CheckpointError(f"{path}: vision_config.model_type={meta['vision_config']['model_type']!r}; only CLIP "
                              f"vision towers are supported")
    layers = meta.get("vision_feature_layer", -2)
    vision = config_from_hf({"vision_config": meta.get("vision_config", {})}).vision
    keys = {_strip(k): v for k, v in tensors.items()}
    with tempfile.TemporaryDirectory() as tmp:                # the LLM through the registry's HF reader
        from safetensors.torch import save_file
        text = {"tie_word_embeddings": meta.get("tie_word_embeddings", False), **meta["text_config"]}
        (Path(tmp) / "config.json").write_text(json.dumps(text))
        save_file({k.removeprefix("llm."): v.contiguous() for k, v in keys.items() if k.startswith("llm.")},
                  str(Path(tmp) / "model.safetensors"))
        llm = models.load(tmp, kind="llm")
    cfg = LlavaConfig(vision=vision, llm=to_dict(llm.cfg),
                      feature_layers=tuple(layers) if isinstance(layers, list) else (layers,),
                      select=meta.get("vision_feature_select_strategy", "default"),
                      image_token_id=meta.get("image_token_index", meta.get("image_token_id", 32000)),
                      projector_bias=meta.get("multimodal_projector_bias", True))
    if meta.get("projector_hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{path}: projector_hidden_act={meta['projector_hidden_act']!r}; only gelu is supported")
    model = Llava(cfg, llm)
    clip_keys = state_from_hf({"vision_model." + k.removeprefix("vision_tower."): v for k, v in keys.items()
                               if k.startswith("vision_tower.")})
    state = {"vision." + k.removeprefix("visual."): v for k, v in clip_keys.items()}
    state.update({k.replace("multi_modal_projector.linear_1", "projector.fc1")
                  .replace("multi_modal_projector.linear_2", "projector.fc2"): v
                  for k, v in keys.items() if k.startswith("multi_modal_projector.")})
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("llm.")]
    if missing or unexpected:
        raise CheckpointError(f"{path} is not a complete LLaVA checkpoint (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model


def _llama_text_to_hf(llm: nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The kit LLaMA (the ``llm`` kind's checkpoint layout: fused qkv and gate_up) -> transformers ``LlamaConfig``
    dict and ``model.language_model.* / lm_head.*`` tensors."""
    c = to_dict(llm.cfg)
    layout = {"family": "llama", "norm": "rmsnorm", "mlp": "swiglu", "positions": "rope"}
    bad = {k: c.get(k) for k, v in layout.items() if c.get(k) != v}
    rope = c.get("rope") or {}
    if bad or c.get("sliding_window") is not None or rope.get("type", "none") != "none" or \
            c.get("qkv_bias") != c.get("out_bias"):
        raise CheckpointError(f"to_hf writes LLaVA with a plain LLaMA text model (family llama, rmsnorm, swiglu, "
                              f"unscaled rope, no sliding window, qkv_bias == out_bias); this LLM has "
                              f"{bad or {k: c.get(k) for k in ('rope', 'sliding_window', 'qkv_bias', 'out_bias')}}")
    n_heads, n_kv = c["n_heads"], c.get("n_kv_heads") or c["n_heads"]
    head_dim = c.get("head_dim") or c["d_model"] // n_heads
    d_ff = int(llm.cfg.d_ff)
    text = {"model_type": "llama", "vocab_size": c["vocab_size"], "hidden_size": c["d_model"],
            "num_hidden_layers": c["n_layers"], "num_attention_heads": n_heads, "num_key_value_heads": n_kv,
            "head_dim": head_dim, "intermediate_size": d_ff, "max_position_embeddings": c["max_seq_len"],
            "rms_norm_eps": c["norm_eps"], "hidden_act": "silu", "attention_bias": c["qkv_bias"],
            "mlp_bias": c["mlp_bias"], "tie_word_embeddings": c["tie_embeddings"], "attention_dropout": 0.0,
            "rope_parameters": {"rope_type": "default", "rope_theta": rope.get("theta", 10000.0)}}
    st, out = llm.state_dict(), {}
    p = "model.language_model."
    out[p + "embed_tokens.weight"], out[p + "norm.weight"] = st["tok_emb.weight"], st["norm.weight"]
    sizes = [n_heads * head_dim, n_kv * head_dim, n_kv * head_dim]
    for i in range(c["n_layers"]):
        q, h = f"layers.{i}.", f"{p}layers.{i}."
        for n, w in zip("qkv", st[q + "attn.qkv.weight"].split(sizes)):
            out[f"{h}self_attn.{n}_proj.weight"] = w
        gate, up = st[q + "mlp.gate_up.weight"].split(d_ff)
        out.update({h + "input_layernorm.weight": st[q + "attn_norm.weight"],
                    h + "post_attention_layernorm.weight": st[q + "mlp_norm.weight"],
                    h + "self_attn.o_proj.weight": st[q + "attn.out.weight"], h + "mlp.gate_proj.weight": gate,
                    h + "mlp.up_proj.weight": up, h + "mlp.down_proj.weight": st[q + "mlp.down.weight"]})
        if c["qkv_bias"]:
            for n, b in zip("qkv", st[q + "attn.qkv.bias"].split(sizes)):
                out[f"{h}self_attn.{n}_proj.bias"] = b
            out[h + "self_attn.o_proj.bias"] = st[q + "attn.out.bias"]
        if c["mlp_bias"]:
            gb, ub = st[q + "mlp.gate_up.bias"].split(d_ff)
            out.update({h + "mlp.gate_proj.bias": gb, h + "mlp.up_proj.bias": ub,
                        h + "mlp.down_proj.bias": st[q + "mlp.down.bias"]})
    if not c["tie_embeddings"]:
        out["lm_head.weight"] = st["lm_head.weight"]
    return text, out


def llava_to_hf(model: Llava, path: str | Path) -> Path:
    """Write ``model`` as a transformers ``LlavaForConditionalGeneration`` folder (CLIP vision + Llama text)."""
    from safetensors.torch import save_file

    from .convert import key_to_hf, vision_config_to_hf
    cfg = model.cfg
    text, tensors = _llama_text_to_hf(model.llm)
    vision = {**vision_config_to_hf(cfg.vision), "model_type": "clip_vision_model"}
    for k, v in model.vision.state_dict().items():
        tensors["model.vision_tower." + key_to_hf("visual." + k)] = v
    for ours, hf in (("fc1", "linear_1"), ("fc2", "linear_2")):
        for k, v in getattr(model.projector, ours).state_dict().items():
            tensors[f"model.multi_modal_projector.{hf}.{k}"] = v
    layers = list(cfg.feature_layers)
    meta = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "text_config": text,
            "vision_config": vision, "image_token_index": cfg.image_token_id, "projector_hidden_act": "gelu",
            "vision_feature_layer": layers[0] if len(layers) == 1 else layers,
            "vision_feature_select_strategy": cfg.select, "multimodal_projector_bias": cfg.projector_bias,
            "image_seq_length": cfg.n_image_tokens, "tie_word_embeddings": text["tie_word_embeddings"]}
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    (p / "config.json").write_text(json.dumps(meta, indent=2))
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(p / "model.safetensors"),
              metadata={"format": "pt"})
    return p
