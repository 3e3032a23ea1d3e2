"""Small image classifiers for digits (8x8, optionally upscaled) and shapes (RGB): an MLP, a plain
CNN (LeCun et al., 1998), a small ResNet (He et al., 2016, "Deep Residual Learning": BasicBlock
with BatchNorm, residual adds and max-pool) and a tiny Vision Transformer (Dosovitskiy et al., 2021,
"An Image is Worth 16x16 Words": patch embedding, [CLS] token, the shared pre-norm ``nn.EncoderBlock``).

Every model maps images (B, C, H, W) to logits (B, num_classes), keeps its architecture in one
``VisionModelConfig`` (saved as ``config.json["model"]``), and names the layer Grad-CAM should look
at by default (``model.cam_layer``). The ViT also says how its tokens form a grid
(``grid_size``, ``num_prefix_tokens``) so explainers can reshape them without being told.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..config import from_dict, require, to_dict
from ..nn import EncoderBlock, LayerNorm

ModelName = Literal["mlp", "cnn", "resnet", "vit"]
MODEL_NAMES: tuple[str, ...] = ("mlp", "cnn", "resnet", "vit")


@dataclass(frozen=True, kw_only=True)
class VisionModelConfig:
    name: ModelName = "cnn"
    """architecture: mlp, cnn, resnet or vit"""
    in_channels: int = 1
    """image channels (1 for digits, 3 for shapes)"""
    image_size: int = 8
    """input height = width in pixels (8 for digits, 8*upscale when upscaled)"""
    num_classes: int = 10
    """number of output logits"""
    width: int = 32
    """base width: hidden units (mlp), first conv channels (cnn/resnet), embedding dim (vit)"""
    depth: int = 2
    """hidden layers (mlp), conv stages (cnn/resnet) or encoder blocks (vit)"""
    patch_size: int = 2
    """vit only: patch side in pixels (image_size must be a multiple)"""
    heads: int = 4
    """vit only: attention heads (width must be a multiple)"""
    mlp_ratio: int = 2
    """vit only: hidden width of each block's MLP as a multiple of width"""
    dropout: float = 0.0
    """dropout before the classifier head (0 disables)"""

    def __post_init__(self) -> None:
        require(self.in_channels > 0, "model.in_channels", self.in_channels, "must be > 0")
        require(self.image_size >= 4, "model.image_size", self.image_size, "must be >= 4")
        require(self.num_classes >= 2, "model.num_classes", self.num_classes, "must be >= 2")
        require(self.width > 0, "model.width", self.width, "must be > 0")
        require(self.depth >= 1, "model.depth", self.depth, "must be >= 1")
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")
        if self.name in ("cnn", "resnet"):
            require(self.image_size % (2 ** self.depth) == 0, "model.depth", self.depth,
                    f"each stage halves the image: image_size={self.image_size} must be divisible by 2**depth")
        if self.name == "vit":
            require(self.patch_size > 0 and self.image_size % self.patch_size == 0, "model.patch_size",
                    self.patch_size, f"must divide image_size={self.image_size}")
            require(self.width % self.heads == 0, "model.heads", self.heads,
                    f"must divide width={self.width}")


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] x depth -> Linear."""

    def __init__(self, cfg: VisionModelConfig):
        super().__init__()
        self.config = cfg
        d_in = cfg.in_channels * cfg.image_size ** 2
        layers: list[nn.Module] = []
        for i in range(cfg.depth):
            layers += [nn.Linear(d_in if i == 0 else cfg.width * 4, cfg.width * 4), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.width * 4, cfg.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.flatten(1))                  # (B, 4*width)
        return self.head(self.dropout(h))                # (B, num_classes)


class SmallCNN(nn.Module):
    """[Conv3x3 -> ReLU -> Conv3x3 -> ReLU -> MaxPool2] x depth -> global average pool -> Linear."""

    def __init__(self, cfg: VisionModelConfig):
        super().__init__()
        self.config = cfg
        layers: list[nn.Module] = []
        c_in = cfg.in_channels
        for i in range(cfg.depth):
            c = cfg.width * 2 ** i
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, cfg.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolution's ReLU (before the final pool), Grad-CAM's usual choice."""
        return self.features[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)                             # (B, C, H/2^d, W/2^d)
        h = h.mean(dim=(2, 3))                           # (B, C)
        return self.head(self.dropout(h))                # (B, num_classes)


class BasicBlock(nn.Module):
    """He et al. (2016) BasicBlock: y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()                            # reused twice in forward (shap #3725 case)
        self.shortcut = (nn.Identity() if c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))           # (B, c_out, H, W)
        h = self.bn2(self.conv2(h))                      # (B, c_out, H, W)
        return self.relu(h + self.shortcut(x))           # residual add


class SmallResNet(nn.Module):
    """Stem conv-BN-ReLU, then per stage a BasicBlock followed by MaxPool2; global average pool; Linear."""

    def __init__(self, cfg: VisionModelConfig):
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(w), nn.ReLU())
        stages: list[nn.Module] = []
        c_in = w
        for i in range(cfg.depth):
            c = w * 2 ** i
            stages.append(nn.Sequential(BasicBlock(c_in, c), nn.MaxPool2d(2)))
            c_in = c
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, cfg.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last residual block (its output, before the final pool)."""
        return self.stages[-1][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))                    # (B, C, H/2^d, W/2^d)
        h = h.mean(dim=(2, 3))                           # (B, C)
        return self.head(self.dropout(h))                # (B, num_classes)


class TinyViT(nn.Module):
    """Dosovitskiy et al. (2021) eqs. 1-4: patches -> linear embedding + [CLS] + learned positions -> pre-norm
    encoder blocks (``nn.EncoderBlock``: MHA, exact-GELU MLP) -> LN -> head on [CLS]."""

    num_prefix_tokens = 1

    def __init__(self, cfg: VisionModelConfig):
        super().__init__()
        self.config = cfg
        D, p = cfg.width, cfg.patch_size
        self.grid_size = cfg.image_size // p
        self.patch_embed = nn.Conv2d(cfg.in_channels, D, p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid_size ** 2, D) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(D, cfg.heads, mlp_hidden=cfg.mlp_ratio * D, activation="gelu")
                                    for _ in range(cfg.depth))
        self.norm = LayerNorm(D)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(D, cfg.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last block's first LayerNorm: tokens (B, 1+g*g, D) that Grad-CAM reshapes to a grid."""
        return self.blocks[-1].attn_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        t = self.patch_embed(x).flatten(2).transpose(1, 2)          # (B, g*g, D)
        t = torch.cat([self.cls_token.expand(B, -1, -1), t], dim=1)  # (B, 1+g*g, D)
        t = t + self.pos_embed                                       # (B, 1+g*g, D)
        for block in self.blocks:
            t = block(t)                                             # (B, 1+g*g, D)
        return self.head(self.dropout(self.norm(t)[:, 0]))           # (B, num_classes)


ARCHITECTURES: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": SmallCNN, "resnet": SmallResNet, "vit": TinyViT}


def build_model(name: str | VisionModelConfig | dict[str, Any] = "cnn", **fields: Any) -> nn.Module:
    """A classifier from a name (+ config fields), a ``VisionModelConfig`` or its dict form."""
    if isinstance(name, VisionModelConfig):
        cfg = name if not fields else from_dict(VisionModelConfig, {**to_dict(name), **fields}, prefix="model.")
    elif isinstance(name, dict):
        cfg = from_dict(VisionModelConfig, {**name, **fields}, prefix="model.")
    else:
        cfg = from_dict(VisionModelConfig, {"name": name, **fields}, prefix="model.")
    return ARCHITECTURES[cfg.name](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

