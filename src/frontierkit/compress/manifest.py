"""The compress area's manifest: ``frontier compress``, its tour section and its model transforms
(quantized and pruned models keep their kind; these rebuild their structure before weights load)."""
from __future__ import annotations

from ..areas import Manifest

MANIFEST = Manifest(
    name="compress", help="quantization (dynamic/static/QAT/weight-only INT8, INT4 RTN/GPTQ), pruning, distillation",
    commands="frontierkit.compress.commands:register",
    tour={"compress": "frontierkit.compress.demo:tour"},
    transforms={"compress.dynamic_int8": "frontierkit.compress.quantize:apply_dynamic_int8",
                "compress.static_int8": "frontierkit.compress.static:apply_static_int8",
                "compress.weight_only": "frontierkit.compress.gptq:apply_weight_only",
                "compress.prune_mask": "frontierkit.compress.prune:apply_masks",
                "compress.channels": "frontierkit.compress.structured:apply_channels",
                "compress.heads": "frontierkit.compress.heads:apply_heads"},
)
