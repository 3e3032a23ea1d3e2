"""The serve area's manifest: ``frontier serve`` (an OpenAI-compatible server with continuous
batching over a paged KV cache; ONNX export) and its tour section. It declares no model kind: it
serves the ``lm`` kinds and exports the ``classifier``/``lm`` kinds other areas register."""
from __future__ import annotations

from ..areas import Manifest

MANIFEST = Manifest(
    name="serve", help="OpenAI-compatible server (continuous batching, paged KV cache), ONNX export",
    commands="frontierkit.serve.commands:register",
    tour={"serve": "frontierkit.serve.demo:tour"},
)
