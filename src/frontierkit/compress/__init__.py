"""Model compression for any kit model (an ``nn.Module`` from ``frontierkit.models.load``): INT8/INT4
quantization with real integer kernels, GPTQ, pruning (unstructured and structured) and distillation."""
from .gptq import gptq, quantize_weights, rtn
from .qat import convert_qat, prepare_qat, quantization_aware_training
from .quantize import DynamicInt8Linear, DynamicInt8LSTM, Int4WeightOnlyLinear, Int8WeightOnlyLinear, quantize_dynamic
from .static import StaticInt8Conv2d, StaticInt8Linear, fold_batchnorms, fold_bn, quantize_static

__all__ = ["DynamicInt8Linear", "DynamicInt8LSTM", "Int4WeightOnlyLinear", "Int8WeightOnlyLinear", "StaticInt8Conv2d",
           "StaticInt8Linear", "convert_qat", "fold_batchnorms", "fold_bn", "gptq", "prepare_qat",
           "quantization_aware_training", "quantize_dynamic", "quantize_static", "quantize_weights", "rtn"]
