"""The shared training loop, LR schedules and atomic checkpoints (distributed strategies: strategy.py)."""
from .loop import Hooks, Trainer, TrainConfig, TrainResult, accumulate_gradients, fit, make_optimizer, make_scheduler
from .schedules import lr_multiplier, warmup_cosine, warmup_stable_decay

__all__ = ["Hooks", "Trainer", "TrainConfig", "TrainResult", "accumulate_gradients", "fit",
           "make_optimizer", "make_scheduler", "lr_multiplier", "warmup_cosine", "warmup_stable_decay"]
