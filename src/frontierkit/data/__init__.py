"""Offline, deterministic datasets built on this machine: pycorpus (Python stdlib text) + BPE,
sklearn's digits, synthetic shapes with captions and QA. Cached under ``cache_dir()``."""
from __future__ import annotations

import os
from pathlib import Path

from .batches import BatchSource, TensorBatches, TokenBatches


def cache_dir() -> Path:
    """``$FRONTIERKIT_CACHE``, else ``./.cache/frontierkit`` (inside the repo when run from it)."""
    path = Path(os.environ.get("FRONTIERKIT_CACHE", Path.cwd() / ".cache" / "frontierkit"))
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["BatchSource", "TensorBatches", "TokenBatches", "cache_dir"]
