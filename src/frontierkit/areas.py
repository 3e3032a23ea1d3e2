"""Area manifests: each area declares, in one place (``<area>/manifest.py``), its CLI registration,
its tour sections and its model kinds. The CLI, the tour and the model registry read them here.

Adding an area is one new package with a ``manifest.py`` plus one line in :data:`AREAS`.
Manifests hold only names ("module:function" strings), so reading them imports no area code:
core looks an area's functions up by name when they are first needed.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

AREAS: tuple[str, ...] = ("train", "data", "llm", "vision", "explain", "rl", "robust", "compress", "multimodal", "privacy",
                         "diffusion", "serve", "agents", "science")
"""The area packages under ``frontierkit``, in CLI and tour order."""


@dataclass(frozen=True)
class ModelKind:
    """A kind of saved model: ``config.json`` ``{"kind": name, "model": {...}}`` + ``model.safetensors``.

    Every callable is a "module:function" name, imported only when used:
    - ``build(model_config: dict) -> nn.Module`` makes the (untrained) module a config describes;
    - ``config_of(module) -> dict`` the inverse, for ``models.save`` without an explicit config;
    - ``detect(meta: dict) -> bool`` recognises folders written without a ``kind`` (older runs,
      Hugging Face folders);
    - ``load_foreign(path, meta) -> nn.Module`` loads a folder in another library's format (a
      config.json without a ``model`` section, e.g. a Hugging Face folder);
    - ``dataset(meta, split) -> (x, y)`` the data a saved model was trained on (classifiers);
    - ``assets_of(module) -> {relative file name: bytes}`` files ``models.save`` writes beside the weights (in
      the same atomic folder), e.g. a tokenizer; ``attach_assets(module, folder)`` reads them back after load.
    """
    name: str
    build: str
    classes: tuple[str, ...] = ()
    """"module:Class" of the modules this kind saves (``models.kind_of`` matches them)"""
    tags: frozenset[str] = frozenset()
    """what the model is for: "classifier" (images -> logits), "lm" (tokens -> logits), "policy" ..."""
    config_of: str = ""
    detect: str = ""
    load_foreign: str = ""
    dataset: str = ""
    assets_of: str = ""
    attach_assets: str = ""
    description: str = ""


@dataclass(frozen=True)
class Manifest:
    """What one area adds to the kit."""
    name: str
    help: str
    commands: str = ""
    """"module:function" ``register(subparsers, name, help)`` adding ``frontier <name> ...``"""
    tour: dict[str, str] = field(default_factory=dict)
    """tour section name -> "module:function" ``tour(ctx) -> Section``"""
    kinds: tuple[ModelKind, ...] = ()
    transforms: dict[str, str] = field(default_factory=dict)
    """model transform name -> "module:function" ``apply(module, spec: dict) -> module`` that rebuilds a
    transformed model's structure (e.g. int8 Linear layers) before its saved weights are loaded"""


def resolve(target: str) -> Callable[..., Any]:
    """The object a "module:attribute" name points at."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@lru_cache(maxsize=None)
def manifests() -> tuple[Manifest, ...]:
    """Every area's manifest, in :data:`AREAS` order (areas missing from this install are skipped)."""
    out = []
    for area in AREAS:
        name = f"frontierkit.{area}.manifest"
        try:
            out.append(importlib.import_module(name).MANIFEST)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue                       # the area is not part of this install
            raise
    return tuple(out)


def tour_sections() -> dict[str, str]:
    """Tour section name -> "module:function", over all areas in order."""
    return {name: target for m in manifests() for name, target in m.tour.items()}


def model_transforms() -> dict[str, str]:
    """Transform name -> "module:function", over all areas; a name declared twice is an error."""
    out: dict[str, str] = {}
    for m in manifests():
        for name, target in m.transforms.items():
            if name in out:
                raise RuntimeError(f"model transform {name!r} is declared by two areas' manifests")
            out[name] = target
    return out


def model_kinds() -> dict[str, ModelKind]:
    """Model kind name -> its :class:`ModelKind`, over all areas; a name declared twice is an error."""
    kinds: dict[str, ModelKind] = {}
    for m in manifests():
        for kind in m.kinds:
            if kind.name in kinds:
                raise RuntimeError(f"model kind {kind.name!r} is declared by two areas' manifests")
            kinds[kind.name] = kind
    return kinds
