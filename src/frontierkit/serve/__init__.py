"""Deployment: an OpenAI-compatible server over continuous batching (Orca, Yu et al. 2022) with a
paged KV cache (PagedAttention, Kwon et al. 2023), and ONNX export with onnxruntime parity."""
