"""Adversarial robustness: attacks (FGSM, PGD, APGD-CE), adversarial training (PGD-AT, TRADES) through the
shared loop's hooks, input purification (feature squeezing) and its adaptive evaluation (BPDA, EOT)."""
from .attacks import apgd, fgsm, pgd, project, steepest_ascent
from .defenses import AdversarialConfig, RobustRunConfig, madry_transform, trades_loss, trades_transform, train_robust
from .evaluate import ladder, robustness_table, sanity_checks
from .purify import BitDepth, Compose, GaussianNoise, MedianSmoothing, Purified, Purifier, as_purifier

__all__ = ["AdversarialConfig", "BitDepth", "Compose", "GaussianNoise", "MedianSmoothing", "Purified", "Purifier",
           "RobustRunConfig", "apgd", "as_purifier", "fgsm", "ladder", "madry_transform", "pgd", "project",
           "robustness_table", "sanity_checks", "steepest_ascent", "train_robust", "trades_loss", "trades_transform"]
