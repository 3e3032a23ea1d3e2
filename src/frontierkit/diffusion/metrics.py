"""Sample-quality measures computed with a kit classifier trained on the same data (no Inception
weights are available offline, so this is *not* FID's Inception space): the Fréchet distance of
Heusel et al. 2017 ("GANs Trained by a Two Time-Scale Update Rule", eq. 6) between Gaussian fits of
penultimate-layer features; caption accuracy of generated shapes (shape by the classifier, colour and
position measured from the foreground); mask IoU for ControlNet (Zhang et al. 2023 sec. 4)."""
from __future__ import annotations

import torch
from torch import nn

from ..data.shapes import COLORS
from .data import foreground_mask


@torch.no_grad()
def penultimate_features(classifier: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, F): the input of the classifier's last Linear layer (its feature space)."""
    last = [m for m in classifier.modules() if isinstance(m, nn.Linear)][-1]
    feats: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach().flatten(1)))
    was = classifier.training
    classifier.eval()
    try:
        for i in range(0, len(x), batch_size):
            classifier(x[i:i + batch_size])
    finally:
        hook.remove()
        classifier.train(was)
    return torch.cat(feats).double()


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """Heusel et al. 2017 eq. 6: ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½), with Tr((Σ1Σ2)^½) = Σ √eig(Σ1Σ2)."""
    f1, f2 = f1.double(), f2.double()
    mu1, mu2 = f1.mean(0), f2.mean(0)                                        # (F,)
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)                                # (F, F)
    eig = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0)
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum())


def classify(classifier: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N,) argmax class of the classifier in eval mode."""
    was = classifier.training
    classifier.eval()
    with torch.no_grad():
        out = torch.cat([classifier(x[i:i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])
    classifier.train(was)
    return out


def color_of(images: torch.Tensor) -> torch.Tensor:
    """(N,) index into shapes' palette nearest the mean foreground colour (−1 when nothing is drawn)."""
    masks = foreground_mask(images)                                          # (N, S, S)
    palette = torch.tensor(list(COLORS.values()))                           # (K, 3)
    out = torch.full((len(images),), -1, dtype=torch.long)
    for i in range(len(images)):
        if masks[i].sum() >= 3:
            mean = images[i][:, masks[i]].mean(1)                            # (3,)
            out[i] = (palette - mean).pow(2).sum(1).argmin()
    return out


def position_of(images: torch.Tensor) -> torch.Tensor:
    """(N,) 3×3 grid cell (row·3 + col, shapes' POSITIONS order) of the foreground centroid (−1 if empty)."""
    masks = foreground_mask(images)
    S = images.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    out = torch.full((len(images),), -1, dtype=torch.long)
    for i in range(len(images)):
        m = masks[i]
        if m.sum() >= 3:
            row = min(int(ys[m].mean() / (S / 3)), 2)
            col = min(int(xs[m].mean() / (S / 3)), 2)
            out[i] = row * 3 + col
    return out


def caption_accuracy(classifier: nn.Module, images: torch.Tensor, labels: dict[str, torch.Tensor]
                     ) -> dict[str, float]:
    """Fraction of generated shapes whose shape (classifier), colour and position (measured) match the caption."""
    shape_ok = classify(classifier, images) == labels["shape"]
    color_ok = color_of(images) == labels["color"]
    pos_ok = position_of(images) == labels["position"]
    return {"shape_acc": shape_ok.float().mean().item(), "color_acc": color_ok.float().mean().item(),
            "position_acc": pos_ok.float().mean().item(),
            "all_acc": (shape_ok & color_ok & pos_ok).float().mean().item()}


def mask_iou(images: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean IoU between the generated foreground and the target mask."""
    pred = foreground_mask(images)
    inter = (pred & masks).flatten(1).sum(1).float()
    union = (pred | masks).flatten(1).sum(1).float().clamp(min=1)
    return float((inter / union).mean())
