"""Model compression for any kit model (an ``nn.Module`` from ``frontierkit.models.load``): INT8/INT4
quantization with real integer kernels, GPTQ, pruning (unstructured and structured) and distillation."""
from .gptq import gptq, quantize_weights, rtn
from .quantize import DynamicInt8Linear, DynamicInt8LSTM, Int4WeightOnlyLinear, Int8WeightOnlyLinear, quantize_dynamic

__all__ = ["DynamicInt8Linear", "DynamicInt8LSTM", "Int4WeightOnlyLinear", "Int8WeightOnlyLinear", "gptq",
           "quantize_dynamic", "quantize_weights", "rtn"]
