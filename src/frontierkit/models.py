"""The model registry: one way to save and load every kit model, whatever its area.

A saved model is a folder with ``config.json`` ``{"kind": ..., "model": {...}, "run": {...}}`` and
``model.safetensors``. The ``kind`` ("llm", "vision", "rl-policy", ...) names a
:class:`frontierkit.areas.ModelKind` that an area declares in its manifest; core looks it up by
name, so importing this module imports no area. ``load`` accepts a run folder (``<out>``, whose
weights are in ``<out>/model``), a model folder, or a Hugging Face folder of a kind that reads one;
anything else is one clear error.

    model = models.load("runs/vision")                       # any kind
    m = models.open_model("runs/llm", kind="llm")            # + its kind, config and run config
    models.save(model, "out/model", run={"note": "pruned"})

Transformed models (quantized, pruned...) keep their kind: the transform records itself in the
module's ``frontier_transforms`` list (``[{"name": ..., **spec}]``), ``save`` writes that list to
config.json, and ``load`` rebuilds the plain model, re-applies each transform by name (an area
declares it in its manifest's ``transforms``) and only then loads the saved weights.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from .areas import ModelKind, model_kinds, model_transforms, resolve
from .errors import CheckpointError
from .train import checkpoint as ckpt

__all__ = ["Loaded", "build", "check_folder", "load", "open_model", "save", "kind_of", "model_dir", "kinds", "TRANSFORMS_ATTR"]

TRANSFORMS_ATTR = "frontier_transforms"
"""module attribute: the transforms applied to a kit model, in order (saved to config.json)"""


def kinds() -> dict[str, ModelKind]:
    """Every model kind the installed areas declare."""
    return model_kinds()


def build(kind: str, config: dict[str, Any]) -> nn.Module:
    """A fresh (untrained) model of a registered kind from its config dict, e.g. an LLM for LLaVA's
    language model, without importing the area that defines it."""
    known = model_kinds()
    if kind not in known:
        raise CheckpointError(f"model kind {kind!r} is not registered (known kinds: {', '.join(known)})")
    return resolve(known[kind].build)(config)


def model_dir(path: str | Path) -> Path:
    """The folder holding ``config.json``: ``path`` itself, or ``path/model`` for a run folder."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"model folder {str(p)!r} does not exist; pass a run folder (runs/NAME), "
                              f"its model/ folder, or a Hugging Face model folder")
    if not p.is_dir():
        raise CheckpointError(f"{str(p)!r} is a file, not a model folder; pass the folder that holds "
                              f"{ckpt.CONFIG_FILE} and {ckpt.MODEL_FILE} (or a run folder)")
    if (p / "model" / ckpt.CONFIG_FILE).is_file():
        return p / "model"
    if (p / ckpt.CONFIG_FILE).is_file():
        return p
    hint = " (it has checkpoints/ but no model/: the run has not finished; resume it)" \
        if (p / "checkpoints").is_dir() else ""
    raise CheckpointError(f"{str(p)!r} holds no model: expected {ckpt.CONFIG_FILE} in it or in its model/ "
                          f"folder{hint}. Pass a run folder, its model/ folder or a Hugging Face model folder")


def _kind_of_meta(meta: dict[str, Any], path: Path, prefer: set[str] = frozenset()) -> ModelKind:
    """The kind ``config.json`` names, or the one whose ``detect`` recognises it (older runs, HF folders;
    the kinds in ``prefer`` are asked first)."""
    known = model_kinds()
    name = meta.get("kind")
    if name is not None:
        if not isinstance(name, str) or name not in known:
            raise CheckpointError(f"{path}/{ckpt.CONFIG_FILE} says kind={name!r}, which this install does not "
                                  f"know (known kinds: {', '.join(known)}); is an area package missing?")
        return known[name]
    for kind in sorted(known.values(), key=lambda k: k.name not in prefer):
        if kind.detect and resolve(kind.detect)(meta):
            return kind
    raise CheckpointError(f"{path}/{ckpt.CONFIG_FILE} names no model kind and matches none of "
                          f"{', '.join(known)}; it was not written by frontierkit or a supported library")


def _as_set(x: str | Iterable[str] | None) -> set[str]:
    return set() if x is None else {x} if isinstance(x, str) else set(x)


@dataclass
class Loaded:
    """A loaded model with what its folder says about it."""
    model: nn.Module
    kind: ModelKind
    path: Path
    """the folder holding config.json"""
    meta: dict[str, Any]
    """config.json"""

    @property
    def config(self) -> dict[str, Any]:
        """The model config (``config.json``'s ``model`` section)."""
        return self.meta.get("model") or {}

    @property
    def run(self) -> dict[str, Any]:
        """The run config that trained it (empty when unknown)."""
        return self.meta.get("run") or {}

    def dataset(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split of the data the model was trained on, for kinds that know it (classifiers)."""
        if not self.kind.dataset:
            raise CheckpointError(f"{self.path} holds a {self.kind.name!r} model, which names no dataset; "
                                  f"pass the inputs explicitly")
        return resolve(self.kind.dataset)(self.meta, split)


def _build_and_load(kind: ModelKind, path: Path, meta: dict[str, Any]) -> nn.Module:
    """Build the plain model, re-apply its saved transforms by name, then load the weights."""
    config = meta.get("model")
    if not isinstance(config, dict) or not config:
        if kind.load_foreign:
            return resolve(kind.load_foreign)(path, meta)
        raise CheckpointError(f"{path}/{ckpt.CONFIG_FILE} has no 'model' section; the checkpoint is incomplete")
    try:
        model = resolve(kind.build)(config)
    except (TypeError, ValueError, KeyError) as e:      # ConfigError included: a hand-edited or foreign config
        raise CheckpointError(f"{path}/{ckpt.CONFIG_FILE} does not describe a valid {kind.name!r} model "
                              f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); the folder is "
                              f"corrupt or was written for another model kind") from None
    for spec in _transforms(meta, path):
        model = resolve(model_transforms()[spec["name"]])(model, spec)
    ckpt.load_into(model, path)
    if kind.attach_assets:
        resolve(kind.attach_assets)(model, path)
    return model


def _transforms(meta: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    specs = meta.get("transforms") or []
    known = model_transforms()
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("name") not in known:
            name = spec.get("name") if isinstance(spec, dict) else spec
            raise CheckpointError(f"{path}/{ckpt.CONFIG_FILE} lists transform {name!r}, which this install does "
                                  f"not know (known: {', '.join(known) or 'none'}); is an area package missing?")
    return specs


def check_folder(path: str | Path, kind: str | Iterable[str] | None = None,
                 tags: str | Iterable[str] | None = None, what: str = "this command") -> tuple[Path, dict[str, Any], ModelKind]:
    """(model folder, config.json, kind) of ``path`` without reading weights; a folder of another kind
    is refused naming both ("this folder holds a 'vision' model; frontier llm generate needs llm")."""
    path = model_dir(path)
    meta = ckpt.load_config_json(path)
    want_kinds, want_tags = _as_set(kind), _as_set(tags)
    k = _kind_of_meta(meta, path, want_kinds)
    if (want_kinds and k.name not in want_kinds) or not want_tags <= k.tags:
        need = " or ".join(sorted(want_kinds)) if want_kinds else f"a model tagged {'/'.join(sorted(want_tags))}"
        fitting = [n for n, kk in model_kinds().items()
                   if (not want_kinds or n in want_kinds) and want_tags <= kk.tags]
        raise CheckpointError(f"{path} holds a {k.name!r} model ({k.description or k.name}); {what} needs "
                              f"{need} (kinds: {', '.join(fitting) or 'none installed'})")
    return path, meta, k


def open_model(path: str | Path, kind: str | Iterable[str] | None = None,
               tags: str | Iterable[str] | None = None, what: str = "this command") -> Loaded:
    """Load the model under ``path`` in eval mode; ``kind``/``tags`` restrict what is accepted.

    A model of another kind is refused with a message naming both (``what`` names the caller)."""
    path, meta, k = check_folder(path, kind, tags, what)
    model = _build_and_load(k, path, meta)
    return Loaded(model=model.eval(), kind=k, path=path, meta=meta)


def load(path: str | Path, kind: str | Iterable[str] | None = None) -> nn.Module:
    """The model saved under ``path`` (run folder, model folder or HF folder), in eval mode."""
    return open_model(path, kind).model


def kind_of(model: nn.Module) -> ModelKind | None:
    """The registered kind whose classes ``model`` is an instance of (None for a foreign module)."""
    for kind in model_kinds().values():
        for target in kind.classes:
            module, _, cls = target.partition(":")
            if module in sys.modules and isinstance(model, getattr(sys.modules[module], cls)):
                return kind               # (a class whose module was never imported has no instances)
    return None


def save(model: nn.Module, path: str | Path, *, kind: str | None = None, config: dict[str, Any] | None = None,
         run: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write ``model`` as a folder ``load`` reads back: config.json {kind, model, run, transforms, ...}
    + safetensors (atomically). ``kind`` and ``config`` default to what the model's registered kind
    derives from the module; the transforms are the module's ``frontier_transforms``; files the kind's
    ``assets_of`` names (e.g. a tokenizer) are written inside the same folder."""
    k = model_kinds().get(kind) if kind else kind_of(model)
    if k is None:
        raise CheckpointError(f"cannot save a {type(model).__name__}: it is no registered model kind "
                              f"({', '.join(model_kinds())}); pass kind=")
    if config is None:
        if not k.config_of:
            raise CheckpointError(f"kind {k.name!r} cannot derive its config from the module; pass config=")
        config = resolve(k.config_of)(model)
    meta = {"kind": k.name, "model": config, "run": run or {}, **extra}
    if getattr(model, TRANSFORMS_ATTR, None):
        meta["transforms"] = list(getattr(model, TRANSFORMS_ATTR))
    files = resolve(k.assets_of)(model) if k.assets_of else None
    return ckpt.save_checkpoint(path, model.state_dict(), meta, files=files)
