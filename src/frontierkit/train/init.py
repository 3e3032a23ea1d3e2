"""``train.init_from`` / ``--init-from DIR``: start a run from the weights of any saved model of the same
kind and shape (a run folder or its ``model/`` folder, read through :mod:`frontierkit.models`), e.g. a
DeepSpeed run from the model a DDP/FSDP run exported (DeepSpeed resumes only its own checkpoints)."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import CheckpointError


def init_from(model: nn.Module, path: str | Path) -> None:
    """Copy the weights saved under ``path`` into ``model``; another kind or shape is refused by name."""
    from .. import models
    kind = models.kind_of(model)
    loaded = models.open_model(path, kind=kind.name if kind else None, what="--init-from")
    own, theirs = model.state_dict(), loaded.model.state_dict()
    wrong = [f"{k}: saved {tuple(theirs[k].shape)} vs this run {tuple(v.shape)}"
             for k, v in own.items() if k in theirs and theirs[k].shape != v.shape]
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    if wrong or missing or unexpected:
        detail = "; ".join(wrong[:3]) or f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        raise CheckpointError(f"--init-from {str(path)!r}: the saved model does not fit this run's model "
                              f"({detail}); pass the same --model.* settings it was trained with")
    model.load_state_dict(theirs)
