"""Configs of the latent-diffusion models (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models"; ControlNet, Zhang et al. 2023; SDXL, Podell et al. 2023) whose field names are diffusers'
config.json keys, so a diffusers folder's config reads straight into them.

``from_dict`` drops diffusers' bookkeeping keys ("_class_name", "_diffusers_version", ...) and the keys of
features we do not implement when they hold diffusers' default value (so they change nothing); any other value
of such a key is refused with a one-line :class:`ConfigError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from ...config import ConfigError, from_dict, require, to_dict

C = TypeVar("C", bound="_DiffusersConfig")

ANY = object()
"""marks a diffusers key whose value never matters here"""

DownBlock = Literal["CrossAttnDownBlock2D", "DownBlock2D"]
UpBlock = Literal["CrossAttnUpBlock2D", "UpBlock2D"]
MidBlock = Literal["UNetMidBlock2DCrossAttn", "UNetMidBlock2D"]

_UNET_UNSUPPORTED: dict[str, Any] = {
    "only_cross_attention": False, "dual_cross_attention": False, "class_embed_type": None,
    "encoder_hid_dim": None, "encoder_hid_dim_type": None, "num_attention_heads": None,
    "resnet_time_scale_shift": "default", "resnet_skip_time_act": False, "resnet_out_scale_factor": 1.0,
    "time_embedding_type": "positional", "time_embedding_dim": None, "time_embedding_act_fn": None,
    "timestep_post_act": None, "time_cond_proj_dim": None, "attention_type": "default",
    "class_embeddings_concat": False, "mid_block_only_cross_attention": (None, False), "cross_attention_norm": None,
    "reverse_transformer_layers_per_block": None, "addition_embed_type_num_heads": ANY,
}
"""diffusers UNet keys we do not implement -> the value that means "feature off" (ANY: every value is inert for
the features we support, e.g. addition_embed_type_num_heads only matters for addition_embed_type='text')"""


@dataclass(frozen=True, kw_only=True)
class _DiffusersConfig:
    """A config read from / written to a diffusers config.json."""

    _class_name: ClassVar[str] = ""
    _unsupported: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Our config from a diffusers config.json dict (bookkeeping and inert keys dropped)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__} config={d!r} is invalid: expected a dict of diffusers config keys")
        name = d.get("_class_name")
        if name is not None and cls._class_name and name != cls._class_name:
            raise ConfigError(f"_class_name={name!r} is invalid: {cls.__name__} reads {cls._class_name} configs")
        kept = {}
        for key, value in d.items():
            if key.startswith("_"):
                continue
            if key in cls._unsupported:
                off = cls._unsupported[key]
                offs = off if isinstance(off, tuple) else (off,)
                inert = any(_normal(value) == o or (isinstance(value, list) and all(v == o for v in value))
                            for o in offs)
                if off is not ANY and not inert:
                    allowed = " or ".join(map(repr, offs))
                    raise ConfigError(f"{key}={value!r} is invalid: frontierkit's {cls.__name__} supports only "
                                      f"{key}={allowed} (this diffusers feature is not implemented)")
                continue
            kept[key] = value
        return from_dict(cls, kept)

    def to_dict(self) -> dict[str, Any]:
        """A diffusers-style config dict (lists for tuples), which ``from_dict`` reads back."""
        return to_dict(self)


def _normal(v: Any) -> Any:
    return [_normal(x) for x in v] if isinstance(v, (list, tuple)) else v


def per_block(value: int | tuple[int, ...] | None, n: int, name: str) -> tuple:
    """An int (or None) repeated for ``n`` blocks, or a per-block tuple checked to have ``n`` entries."""
    if isinstance(value, tuple):
        require(len(value) == n, name, value, f"give one value per down block ({n}) or a single value")
        return value
    return (value,) * n


@dataclass(frozen=True, kw_only=True)
class _UNetEncoderConfig(_DiffusersConfig):
    """The fields a UNet and its ControlNet copy share (time embedding, conditioning, encoder blocks)."""

    _unsupported: ClassVar[dict[str, Any]] = _UNET_UNSUPPORTED

    in_channels: int = 4
    """channels of the (latent) sample"""
    flip_sin_to_cos: bool = True
    """timestep embedding order: [cos, sin] if True (Stable Diffusion) else [sin, cos]"""
    freq_shift: int = 0
    """downscale_freq_shift of the sinusoidal timestep embedding (0 for SD, 1 for the original DDPM)"""
    down_block_types: tuple[DownBlock, ...] = ("CrossAttnDownBlock2D", "DownBlock2D")
    """encoder blocks, one per resolution"""
    mid_block_type: MidBlock | None = "UNetMidBlock2DCrossAttn"
    """bottleneck block (None: none)"""
    block_out_channels: tuple[int, ...] = (32, 64)
    """channels of each resolution level"""
    layers_per_block: int | tuple[int, ...] = 2
    """ResNet blocks per encoder level (the decoder has one more)"""
    downsample_padding: int = 1
    """padding of the stride-2 downsampling convolution"""
    mid_block_scale_factor: float = 1.0
    """the mid block's residual output scale"""
    act_fn: Literal["silu", "swish"] = "silu"
    """activation of ResNet blocks and the time embedding"""
    norm_num_groups: int = 32
    """GroupNorm groups (Wu & He 2018)"""
    norm_eps: float = 1e-5
    """GroupNorm epsilon of ResNet blocks"""
    cross_attention_dim: int | tuple[int, ...] | None = 32
    """width of encoder_hidden_states (text tokens); None: no cross-attention blocks allowed"""
    transformer_layers_per_block: int | tuple[int, ...] = 1
    """transformer blocks per attention layer (SDXL: (1, 2, 10))"""
    attention_head_dim: int | tuple[int, ...] = 8
    """diffusers' name for the NUMBER of attention heads per level (diffusers issue #2011); head dim = channels / it"""
    use_linear_projection: bool = False
    """Linear (SD 2, SDXL) instead of 1x1 conv proj_in/proj_out in the spatial transformers"""
    num_class_embeds: int | None = None
    """class-conditional: number of classes (an embedding added to the timestep embedding)"""
    addition_embed_type: Literal["text_time"] | None = None
    """SDXL micro-conditioning (Podell et al. 2023 §2.2): pooled text embeds + Fourier-embedded time_ids"""
    addition_time_embed_dim: int | None = None
    """sinusoidal width of each SDXL time_id"""
    projection_class_embeddings_input_dim: int | None = None
    """input width of SDXL's add_embedding (pooled text dim + 6 * addition_time_embed_dim)"""
    upcast_attention: bool = False
    """computes attention in fp32 (our fp32 attention always does); kept for diffusers configs"""
    dropout: float = 0.0
    """dropout in the ResNet blocks"""

    def __post_init__(self) -> None:
        n = len(self.down_block_types)
        require(n >= 1, "down_block_types", self.down_block_types, "give at least one block")
        require(len(self.block_out_channels) == n, "block_out_channels", self.block_out_channels,
                f"give one width per down block ({n})")
        for name in ("layers_per_block", "transformer_layers_per_block", "attention_head_dim", "cross_attention_dim"):
            per_block(getattr(self, name), n, name)
        g = self.norm_num_groups
        require(all(c % g == 0 for c in self.block_out_channels), "norm_num_groups", g,
                f"must divide every block_out_channels {self.block_out_channels}")
        heads = per_block(self.attention_head_dim, n, "attention_head_dim")
        require(all(c % h == 0 for c, h in zip(self.block_out_channels, heads)), "attention_head_dim",
                self.attention_head_dim, f"(= heads) must divide block_out_channels {self.block_out_channels}")
        cross = "CrossAttnDownBlock2D" in self.down_block_types or self.mid_block_type == "UNetMidBlock2DCrossAttn"
        require(not cross or self.cross_attention_dim is not None, "cross_attention_dim", None,
                "cross-attention blocks need it; use DownBlock2D/UpBlock2D and mid_block_type='UNetMidBlock2D'")
        if self.addition_embed_type == "text_time":
            require(self.addition_time_embed_dim is not None and self.projection_class_embeddings_input_dim is not None,
                    "addition_embed_type", "text_time",
                    "needs addition_time_embed_dim and projection_class_embeddings_input_dim")
        require(self.num_class_embeds is None or self.num_class_embeds > 0, "num_class_embeds",
                self.num_class_embeds, "a positive number of classes or None")
        require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "a probability in [0, 1)")

    @property
    def n_blocks(self) -> int:
        return len(self.down_block_types)

    def block(self, name: str) -> tuple:
        """A per-block field expanded to one entry per down block."""
        return per_block(getattr(self, name), self.n_blocks, name)


@dataclass(frozen=True, kw_only=True)
class UNetConfig(_UNetEncoderConfig):
    """diffusers' UNet2DConditionModel config (Rombach et al. 2022 §3.3; SDXL additions, Podell et al. 2023)."""

    _class_name: ClassVar[str] = "UNet2DConditionModel"

    sample_size: int | tuple[int, ...] | None = 32
    """spatial size of the sample the model was trained at (informational)"""
    out_channels: int = 4
    """channels of the prediction (ε, v or x0)"""
    up_block_types: tuple[UpBlock, ...] = ("UpBlock2D", "CrossAttnUpBlock2D")
    """decoder blocks, lowest resolution first"""
    center_input_sample: bool = False
    """maps the sample x -> 2x - 1 first"""
    conv_in_kernel: int = 3
    """kernel of the input convolution"""
    conv_out_kernel: int = 3
    """kernel of the output convolution"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.up_block_types) == self.n_blocks, "up_block_types", self.up_block_types,
                f"give as many up blocks as down blocks ({self.n_blocks})")
        for k in ("conv_in_kernel", "conv_out_kernel"):
            require(getattr(self, k) % 2 == 1, k, getattr(self, k), "an odd kernel size")


@dataclass(frozen=True, kw_only=True)
class ControlNetConfig(_UNetEncoderConfig):
    """diffusers' ControlNetModel config (Zhang, Rao & Agrawala 2023, "Adding Conditional Control to
    Text-to-Image Diffusion Models"): the UNet encoder's fields plus the condition's embedding."""

    _class_name: ClassVar[str] = "ControlNetModel"

    conditioning_channels: int = 3
    """channels of the control image"""
    conditioning_embedding_out_channels: tuple[int, ...] = (16, 32, 96, 256)
    """widths of the control image's tiny encoder (each after the first halves the resolution)"""
    controlnet_conditioning_channel_order: Literal["rgb", "bgr"] = "rgb"
    """channel order of the control image ("bgr" flips it first)"""
    global_pool_conditions: bool = False
    """spatially average the residuals (shuffle-style ControlNets)"""


@dataclass(frozen=True, kw_only=True)
class VAEConfig(_DiffusersConfig):
    """diffusers' AutoencoderKL config (Rombach et al. 2022 §3.1, the KL-regularised autoencoder)."""

    _class_name: ClassVar[str] = "AutoencoderKL"
    _unsupported: ClassVar[dict[str, Any]] = {"shift_factor": None, "latents_mean": None, "latents_std": None,
                                              "use_quant_conv": True, "use_post_quant_conv": True,
                                              "force_upcast": ANY}

    in_channels: int = 3
    """image channels"""
    out_channels: int = 3
    """reconstructed image channels"""
    down_block_types: tuple[Literal["DownEncoderBlock2D"], ...] = ("DownEncoderBlock2D", "DownEncoderBlock2D")
    """encoder blocks (each but the last halves the resolution)"""
    up_block_types: tuple[Literal["UpDecoderBlock2D"], ...] = ("UpDecoderBlock2D", "UpDecoderBlock2D")
    """decoder blocks"""
    block_out_channels: tuple[int, ...] = (32, 64)
    """channels per level"""
    layers_per_block: int = 1
    """ResNet blocks per encoder level (decoder: one more)"""
    act_fn: Literal["silu", "swish"] = "silu"
    """activation"""
    latent_channels: int = 4
    """channels of the latent z"""
    norm_num_groups: int = 32
    """GroupNorm groups"""
    sample_size: int | tuple[int, ...] = 32
    """image size trained at (informational)"""
    scaling_factor: float = 0.18215
    """z is multiplied by it before diffusion (unit variance latents, Rombach et al. §4.3.2)"""
    mid_block_add_attention: bool = True
    """self-attention in the mid blocks"""

    def __post_init__(self) -> None:
        n = len(self.block_out_channels)
        require(len(self.down_block_types) == n and len(self.up_block_types) == n, "down_block_types",
                self.down_block_types, f"give one down and one up block per block_out_channels entry ({n})")
        require(all(c % self.norm_num_groups == 0 for c in self.block_out_channels), "norm_num_groups",
                self.norm_num_groups, f"must divide every block_out_channels {self.block_out_channels}")
