"""Hugging Face checkpoints in and out: ``from_hf(path)`` reads a local transformers directory
(config.json + safetensors, single file or sharded index) of a Llama, Mistral, Qwen2 or GPT-2
model; ``to_hf(model, path)`` writes one that transformers loads. Only key names, layouts and
config fields are translated here; the maths lives in ``model.py``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import ConfigError
from ..errors import CheckpointError
from ..nn import RopeConfig
from .model import Transformer, TransformerConfig

SUPPORTED = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
             "gpt2": "GPT2LMHeadModel"}
ROPE_TYPES = {"default": "none", "linear": "linear", "dynamic": "dynamic", "yarn": "yarn", "llama3": "llama3"}
ROPE_KEYS = {"linear": ["factor"], "dynamic": ["factor"], "llama3": ["factor", "low_freq_factor",
             "high_freq_factor", "original_max_position_embeddings"],
             "yarn": ["factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor",
                      "mscale", "mscale_all_dim", "truncate"]}
_ROPE_FIELDS = {"factor": "factor", "low_freq_factor": "low_freq_factor", "high_freq_factor": "high_freq_factor",
                "original_max_position_embeddings": "original_max_seq_len", "beta_fast": "beta_fast",
                "beta_slow": "beta_slow", "attention_factor": "attention_factor", "mscale": "mscale",
                "mscale_all_dim": "mscale_all_dim", "truncate": "truncate"}


# ---------------------------------------------------------------- config.json <-> TransformerConfig

def _bad(what: str) -> CheckpointError:
    return CheckpointError(f"{what}; supported: model_type in {sorted(SUPPORTED)} "
                           f"({', '.join(SUPPORTED.values())}), RoPE types {sorted(ROPE_TYPES)}")


def read_rope(hf: dict[str, Any]) -> RopeConfig:
    """RoPE base + scaling from ``rope_parameters`` (transformers 5) or ``rope_scaling`` + ``rope_theta``."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(params, dict) or any(isinstance(v, dict) for v in params.values()):
        raise _bad(f"rope parameters {params!r} are not one flat table (per-layer RoPE is not supported)")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise _bad(f"RoPE type {kind!r} is not supported")
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    fields = {_ROPE_FIELDS[k]: params[k] for k in ROPE_KEYS.get(kind, []) if params.get(k) is not None}
    try:
        return RopeConfig(theta=float(theta), type=ROPE_TYPES[kind], **fields)
    except (ConfigError, TypeError) as e:
        raise _bad(f"RoPE parameters {params!r} are malformed ({e})") from None


def write_rope(rope: RopeConfig) -> dict[str, Any]:
    kind = {v: k for k, v in ROPE_TYPES.items()}[rope.type]
    out: dict[str, Any] = {"rope_type": kind, "rope_theta": rope.theta}
    for key in ROPE_KEYS.get(kind, []):
        value = getattr(rope, _ROPE_FIELDS[key])
        if value is not None:
            out[key] = value
    return out


def _get(hf: dict[str, Any], key: str, default: Any = ...) -> Any:
    if key in hf and hf[key] is not None:
        return hf[key]
    if default is ...:
        raise _bad(f"config.json of model_type {hf.get('model_type')!r} lacks required field {key!r}")
    return default


def config_from_hf(hf: dict[str, Any]) -> TransformerConfig:
    """transformers config.json dict -> TransformerConfig (clear error for anything unsupported)."""
    family = hf.get("model_type")
    if family not in SUPPORTED:
        raise _bad(f"model_type {family!r} (architectures {hf.get('architectures')}) is not supported")
    try:
        return _gpt2_config(hf) if family == "gpt2" else _llama_config(hf, family)
    except ConfigError as e:
        raise _bad(f"config.json is malformed: {e}") from None


def _llama_config(hf: dict[str, Any], family: str) -> TransformerConfig:
    if _get(hf, "hidden_act", "silu") != "silu":
        raise _bad(f"hidden_act={hf['hidden_act']!r} is not supported (only silu / SwiGLU)")
    window = hf.get("sliding_window") if family == "mistral" else None
    if family == "qwen2" and hf.get("use_sliding_window"):
        raise _bad("Qwen2 with use_sliding_window=true (per-layer windows) is not supported")
    rope = read_rope(hf)
    bias = bool(hf.get("attention_bias", False))
    heads = _get(hf, "num_attention_heads")
    return TransformerConfig(
        family=family, vocab_size=_get(hf, "vocab_size"), n_layers=_get(hf, "num_hidden_layers"),
        n_heads=heads, n_kv_heads=_get(hf, "num_key_value_heads", heads), d_model=_get(hf, "hidden_size"),
        head_dim=hf.get("head_dim"), d_ff=_get(hf, "intermediate_size"),
        max_seq_len=_get(hf, "max_position_embeddings"), norm="rmsnorm", norm_eps=_get(hf, "rms_norm_eps", 1e-6),
        mlp="swiglu", positions="rope", rope=rope, qkv_bias=bias or family == "qwen2", out_bias=bias,
        mlp_bias=bool(hf.get("mlp_bias", False)), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        sliding_window=window)


def _gpt2_config(hf: dict[str, Any]) -> TransformerConfig:
    act = _get(hf, "activation_function", "gelu_new")
    approx = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
    if act not in approx:
        raise _bad(f"GPT-2 activation_function={act!r} is not supported (gelu_new, gelu_pytorch_tanh, gelu)")
    if hf.get("scale_attn_by_inverse_layer_idx") or not hf.get("scale_attn_weights", True):
        raise _bad("GPT-2 attention scaling variants (scale_attn_by_inverse_layer_idx, "
                   "scale_attn_weights=false) are not supported")
    d = _get(hf, "n_embd")
    return TransformerConfig(
        family="gpt2", vocab_size=_get(hf, "vocab_size"), n_layers=_get(hf, "n_layer"), n_heads=_get(hf, "n_head"),
        d_model=d, d_ff=_get(hf, "n_inner", 4 * d), max_seq_len=_get(hf, "n_positions"), norm="layernorm",
        norm_eps=_get(hf, "layer_norm_epsilon", 1e-5), mlp="gelu", gelu_approximate=approx[act],
        positions="learned", qkv_bias=True, out_bias=True, mlp_bias=True,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)))


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """TransformerConfig -> transformers config.json dict for ``cfg.family``."""
    common = {"architectures": [SUPPORTED[cfg.family]], "model_type": cfg.family, "vocab_size": cfg.vocab_size,
              "tie_word_embeddings": cfg.tie_embeddings, "dtype": "float32"}
    if cfg.family == "gpt2":
        _require_layout(cfg, norm="layernorm", mlp="gelu", positions="learned")
        act = "gelu_new" if cfg.gelu_approximate == "tanh" else "gelu"
        return {**common, "n_embd": cfg.d_model, "n_layer": cfg.n_layers, "n_head": cfg.n_heads,
                "n_inner": cfg.d_ff, "n_positions": cfg.max_seq_len, "layer_norm_epsilon": cfg.norm_eps,
                "activation_function": act, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    _require_layout(cfg, norm="rmsnorm", mlp="swiglu", positions="rope")
    out = {**common, "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers,
           "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim,
           "intermediate_size": cfg.d_ff, "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
           "hidden_act": "silu", "rope_parameters": write_rope(cfg.rope), "attention_dropout": 0.0}
    if cfg.family == "llama":
        out.update(attention_bias=cfg.qkv_bias, mlp_bias=cfg.mlp_bias)
    elif cfg.family == "mistral":
        out.update(sliding_window=cfg.sliding_window)
    elif cfg.family == "qwen2":
        out.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.n_layers)
    return out


def _require_layout(cfg: TransformerConfig, **want: str) -> None:
    for key, value in want.items():
        if getattr(cfg, key) != value:
            raise CheckpointError(f"model.{key}={getattr(cfg, key)!r} cannot be written as HF family "
                                  f"{cfg.family!r}, which needs {key}={value!r}")
    if cfg.family in ("llama",) and cfg.qkv_bias != cfg.out_bias:
        raise CheckpointError("HF Llama has one attention_bias flag; model.qkv_bias must equal model.out_bias")
    if cfg.family == "qwen2" and (not cfg.qkv_bias or cfg.out_bias or cfg.mlp_bias):
        raise CheckpointError("HF Qwen2 needs qkv_bias=true, out_bias=false, mlp_bias=false")
    if cfg.family in ("mistral", "qwen2") and cfg.mlp_bias:
        raise CheckpointError(f"HF {cfg.family} has no MLP biases; set model.mlp_bias=false")
    if cfg.family != "mistral" and cfg.sliding_window is not None:
        raise CheckpointError(f"model.sliding_window={cfg.sliding_window} is exported only as family 'mistral'")


# ---------------------------------------------------------------- state-dict key mapping

Tensors = dict[str, torch.Tensor]


def _llama_layer_from_hf(hf: Tensors, p: str, q: str, cfg: TransformerConfig) -> Tensors:
    """One HF Llama-style layer (prefix p) -> ours (prefix q): fuse q/k/v and gate/up."""
    out = {f"{q}attn_norm.weight": hf[f"{p}input_layernorm.weight"],
           f"{q}mlp_norm.weight": hf[f"{p}post_attention_layernorm.weight"],
           f"{q}attn.qkv.weight": torch.cat([hf[f"{p}self_attn.{n}_proj.weight"] for n in "qkv"]),
           f"{q}attn.out.weight": hf[f"{p}self_attn.o_proj.weight"],
           f"{q}mlp.gate_up.weight": torch.cat([hf[f"{p}mlp.gate_proj.weight"], hf[f"{p}mlp.up_proj.weight"]]),
           f"{q}mlp.down.weight": hf[f"{p}mlp.down_proj.weight"]}
    if cfg.qkv_bias:
        out[f"{q}attn.qkv.bias"] = torch.cat([hf[f"{p}self_attn.{n}_proj.bias"] for n in "qkv"])
    if cfg.out_bias:
        out[f"{q}attn.out.bias"] = hf[f"{p}self_attn.o_proj.bias"]
    if cfg.mlp_bias:
        out[f"{q}mlp.gate_up.bias"] = torch.cat([hf[f"{p}mlp.gate_proj.bias"], hf[f"{p}mlp.up_proj.bias"]])
        out[f"{q}mlp.down.bias"] = hf[f"{p}mlp.down_proj.bias"]
    return out


def _qkv_sizes(cfg: TransformerConfig) -> list[int]:
    return [cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim]


def _llama_layer_to_hf(st: Tensors, q: str, p: str, cfg: TransformerConfig) -> Tensors:
    """Ours (prefix q) -> one HF Llama-style layer (prefix p): split q/k/v and gate/up."""
    wq, wk, wv = st[f"{q}attn.qkv.weight"].split(_qkv_sizes(cfg))
    gate, up = st[f"{q}mlp.gate_up.weight"].split(cfg.d_ff)
    out = {f"{p}input_layernorm.weight": st[f"{q}attn_norm.weight"],
           f"{p}post_attention_layernorm.weight": st[f"{q}mlp_norm.weight"],
           f"{p}self_attn.q_proj.weight": wq, f"{p}self_attn.k_proj.weight": wk, f"{p}self_attn.v_proj.weight": wv,
           f"{p}self_attn.o_proj.weight": st[f"{q}attn.out.weight"], f"{p}mlp.gate_proj.weight": gate,
           f"{p}mlp.up_proj.weight": up, f"{p}mlp.down_proj.weight": st[f"{q}mlp.down.weight"]}
    if cfg.qkv_bias:
        for n, b in zip("qkv", st[f"{q}attn.qkv.bias"].split(_qkv_sizes(cfg))):
            out[f"{p}self_attn.{n}_proj.bias"] = b
    if cfg.out_bias:
        out[f"{p}self_attn.o_proj.bias"] = st[f"{q}attn.out.bias"]
    if cfg.mlp_bias:
        gb, ub = st[f"{q}mlp.gate_up.bias"].split(cfg.d_ff)
        out.update({f"{p}mlp.gate_proj.bias": gb, f"{p}mlp.up_proj.bias": ub,
                    f"{p}mlp.down_proj.bias": st[f"{q}mlp.down.bias"]})
    return out


# GPT-2 uses Conv1D (weight stored as (in, out)): transpose to nn.Linear's (out, in).
_GPT2_LAYER = {"ln_1": "attn_norm", "ln_2": "mlp_norm", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.out",
               "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
_GPT2_NORMS = {"ln_1", "ln_2", "attn_norm", "mlp_norm"}


def _gpt2_layer(src: Tensors, a: str, b: str, names: dict[str, str]) -> Tensors:
    """Rename one GPT-2 layer's tensors from prefix ``a`` + key to ``b`` + ``names[key]``, transposing
    the Conv1D <-> Linear weights (the transpose is its own inverse, so one function serves both ways)."""
    out = {}
    for src_name, dst_name in names.items():
        w = src[f"{a}{src_name}.weight"]
        out[f"{b}{dst_name}.weight"] = w if src_name in _GPT2_NORMS else w.t().contiguous()
        out[f"{b}{dst_name}.bias"] = src[f"{a}{src_name}.bias"]
    return out


def _gpt2_layer_from_hf(hf: Tensors, p: str, q: str, cfg: TransformerConfig) -> Tensors:
    return _gpt2_layer(hf, p, q, _GPT2_LAYER)


def _gpt2_layer_to_hf(st: Tensors, q: str, p: str, cfg: TransformerConfig) -> Tensors:
    return _gpt2_layer(st, q, p, {ours: theirs for theirs, ours in _GPT2_LAYER.items()})


def _prefixes(cfg: TransformerConfig) -> tuple[str, str]:
    """(HF body prefix, HF layer list name)."""
    return ("transformer.", "h") if cfg.family == "gpt2" else ("model.", "layers")


def state_from_hf(hf: Tensors, cfg: TransformerConfig) -> Tensors:
    """HF state dict -> our state dict (names, fusions, transposes only)."""
    body, layers = _prefixes(cfg)
    if cfg.family == "gpt2" and f"{body}wte.weight" not in hf:   # GPT2Model checkpoints have no prefix
        hf = {body + k: v for k, v in hf.items()}
    layer_fn: Callable = _gpt2_layer_from_hf if cfg.family == "gpt2" else _llama_layer_from_hf
    try:
        if cfg.family == "gpt2":
            st = {"tok_emb.weight": hf[f"{body}wte.weight"], "pos_emb.weight": hf[f"{body}wpe.weight"],
                  "norm.weight": hf[f"{body}ln_f.weight"], "norm.bias": hf[f"{body}ln_f.bias"]}
        else:
            st = {"tok_emb.weight": hf[f"{body}embed_tokens.weight"], "norm.weight": hf[f"{body}norm.weight"]}
        for i in range(cfg.n_layers):
            st.update(layer_fn(hf, f"{body}{layers}.{i}.", f"layers.{i}.", cfg))
        st["lm_head.weight"] = st["tok_emb.weight"] if cfg.tie_embeddings else hf["lm_head.weight"]
    except KeyError as e:
        raise CheckpointError(f"HF checkpoint lacks tensor {e.args[0]!r} needed for a {cfg.family} model with "
                              f"{cfg.n_layers} layers; is config.json from the same model?") from None
    return st


def state_to_hf(st: Tensors, cfg: TransformerConfig) -> Tensors:
    """Our state dict -> HF state dict of ``cfg.family`` (tied head omitted, as transformers saves it)."""
    body, layers = _prefixes(cfg)
    layer_fn: Callable = _gpt2_layer_to_hf if cfg.family == "gpt2" else _llama_layer_to_hf
    if cfg.family == "gpt2":
        hf = {f"{body}wte.weight": st["tok_emb.weight"], f"{body}wpe.weight": st["pos_emb.weight"],
              f"{body}ln_f.weight": st["norm.weight"], f"{body}ln_f.bias": st["norm.bias"]}
    else:
        hf = {f"{body}embed_tokens.weight": st["tok_emb.weight"], f"{body}norm.weight": st["norm.weight"]}
    for i in range(cfg.n_layers):
        hf.update(layer_fn(st, f"layers.{i}.", f"{body}{layers}.{i}.", cfg))
    if not cfg.tie_embeddings:
        hf["lm_head.weight"] = st["lm_head.weight"]
    return hf


# ---------------------------------------------------------------- files

def read_hf_config(path: Path) -> dict[str, Any]:
    f = path / "config.json"
    if not f.is_file():
        raise CheckpointError(f"{str(path)!r} has no config.json; pass a local Hugging Face model directory")
    try:
        data = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{f} must hold a JSON object")
    return data


def read_hf_tensors(path: Path) -> Tensors:
    """model.safetensors, or every shard named by model.safetensors.index.json (pickle files refused)."""
    from safetensors.torch import load_file

    index, single = path / "model.safetensors.index.json", path / "model.safetensors"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [path / s for s in shards]
    elif single.is_file():
        files = [single]
    elif any(path.glob("*.bin")):
        raise CheckpointError(f"{str(path)!r} holds only pickle (.bin) weights, which frontierkit never loads; "
                              f"re-save it with save_pretrained(..., safe_serialization=True)")
    else:
        raise CheckpointError(f"{str(path)!r} has neither model.safetensors nor model.safetensors.index.json")
    tensors: Tensors = {}
    for f in files:
        if not f.is_file():
            raise CheckpointError(f"shard {f.name} named in {index.name} is missing from {str(path)!r}")
        tensors.update(load_file(str(f)))
    return tensors


def from_hf(path: str | Path, dtype: torch.dtype = torch.float32) -> Transformer:
    """Load a local HF Llama / Mistral / Qwen2 / GPT-2 directory into a ``Transformer`` (eval mode)."""
    path = Path(path)
    cfg = config_from_hf(read_hf_config(path))
    model = Transformer(cfg)
    state = {k: v.to(dtype) for k, v in state_from_hf(read_hf_tensors(path), cfg).items()}
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def to_hf(model: Transformer, path: str | Path, max_shard_bytes: int | None = None) -> Path:
    """Write ``model`` as an HF directory (config.json + safetensors; sharded with an index when the
    weights exceed ``max_shard_bytes``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    hf_cfg = config_to_hf(cfg)
    hf_cfg["dtype"] = str(model.tok_emb.weight.dtype).removeprefix("torch.")
    state = {k: v.detach().cpu().contiguous().clone()
             for k, v in state_to_hf(model.state_dict(), cfg).items()}
    (path / "config.json").write_text(json.dumps(hf_cfg, indent=2))
    shards = _shard(state, max_shard_bytes)
    if len(shards) == 1:
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
        return path
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path / name), metadata={"format": "pt"})
        for k, v in shard.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return path


def _shard(state: Tensors, max_bytes: int | None) -> list[Tensors]:
    if not max_bytes:
        return [state]
    shards: list[Tensors] = [{}]
    size = 0
    for k, v in state.items():
        n = v.numel() * v.element_size()
        if shards[-1] and size + n > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += n
    return shards
