"""The shared training loop, LR schedules, atomic checkpoints and per-example gradients
(distributed strategies: strategy.py)."""
from .config import TrainConfig
from .loop import Hooks, Trainer, TrainResult, accumulate_gradients, accumulate_per_sample_gradients, fit
from .optim import make_optimizer, make_scheduler, param_groups
from .per_sample import per_example_norms, per_sample_grads
from .schedules import lr_multiplier, warmup_cosine, warmup_stable_decay

__all__ = ["Hooks", "Trainer", "TrainConfig", "TrainResult", "accumulate_gradients",
           "accumulate_per_sample_gradients", "fit", "make_optimizer", "make_scheduler", "param_groups",
           "per_example_norms", "per_sample_grads", "lr_multiplier", "warmup_cosine", "warmup_stable_decay"]
