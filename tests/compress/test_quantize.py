"""Dynamic INT8 (Linear, LSTM) against torch.ao's quantize_dynamic; weight-only int8 / int4 (RTN, GPTQ):
real integer kernels, GPTQ against a naive OBQ-order reference, save/load and CLI round trips."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from frontierkit import models
from frontierkit.compress import (DynamicInt8Linear, Int4WeightOnlyLinear, gptq, quantize_dynamic,
                                  quantize_weights, rtn)
from frontierkit.compress.gptq import Grid, hessian
from frontierkit.errors import ConfigError


def _torch_ao(model, types):
    from torch.ao.quantization import per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as ao_quantize_dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ao_quantize_dynamic(model, {t: per_channel_dynamic_qconfig for t in types}, dtype=torch.qint8)


def test_dynamic_int8_linear_and_lstm_match_torch_ao_quantize_dynamic():
    """Oracle: torch.ao.quantization.quantize_dynamic (per-channel qconfig), same FBGEMM kernel. Tolerance:
    outputs within 1.5% of the output range (the grids differ only in scale: max|w|/127 vs /127.5), and
    our error to fp32 within 1.5x of torch.ao's."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    lstm = nn.Sequential(nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)).eval()
    for model, x, types in [(mlp, torch.randn(16, 32), (nn.Linear,)), (lstm, torch.randn(3, 7, 8), (nn.LSTM,))]:
        with torch.no_grad():
            ref, ours, oracle = [out[0] if isinstance(out, tuple) else out for out in
                                 (model(x), quantize_dynamic(model, set(types))(x), _torch_ao(model, types)(x))]
        span = ref.abs().max()
        assert (ours - oracle).abs().max() <= 0.015 * span
        assert (ours - ref).abs().max() <= 1.5 * (oracle - ref).abs().max() + 1e-6


def test_dynamic_int8_kernel_equals_torch_ao_given_its_int8_weights():
    """Oracle: torch.ao's DynamicQuantizedLinear; with its int8 codes and scales loaded into ours the
    outputs are equal to 1e-6 (same integer GEMM, activation quantization and rescale)."""
    torch.manual_seed(0)
    lin = nn.Linear(48, 24)
    ao = _torch_ao(nn.Sequential(lin), (nn.Linear,))[0]
    w, b = ao._packed_params._weight_bias()
    ours = DynamicInt8Linear(48, 24)
    ours.load_state_dict({"weight_int8": w.int_repr(), "weight_scale": w.q_per_channel_scales().float(), "bias": b})
    x = torch.randn(5, 3, 48)
    torch.testing.assert_close(ours(x), ao(x), atol=1e-6, rtol=0)


def test_per_token_dynamic_int8_keeps_small_tokens_precise_where_per_tensor_loses_them():
    """Invariant of per-token activation scales (LLM.int8() / SmoothQuant): with tokens whose magnitudes
    span 1e-3..1e3 in one batch, every token's output stays within 2% of fp32 (relative to that token's
    own output), while one per-call scale (torch.ao's scheme) destroys the small tokens (> 50% error)."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 32).eval()
    with torch.no_grad():
        lin.bias.zero_()                                    # relative error per token without a bias floor
    x = torch.randn(6, 64) * torch.tensor([1e-3, 1e-2, 1e-1, 1.0, 1e2, 1e3])[:, None]   # (T, K)
    with torch.no_grad():
        ref = lin(x)
        per_token = DynamicInt8Linear.from_float(lin, activation="per_token")(x)
        per_tensor = DynamicInt8Linear.from_float(lin)(x)
    rel = lambda y: ((y - ref).norm(dim=-1) / ref.norm(dim=-1))             # noqa: E731  (T,)
    assert rel(per_token).max() < 0.02
    assert rel(per_tensor)[:2].min() > 0.5


def test_per_token_dynamic_int8_equals_per_tensor_on_one_token_and_rebuilds_from_its_record():
    """Invariant: for one token the two granularities are the same quantization (scale s_t = max|x_t|
    divides out; tolerance 1e-4 of the output span for float rounding of x / s_t); a per-token model
    saves and reloads through the registry with identical outputs and its granularity recorded."""
    torch.manual_seed(1)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    x = torch.randn(1, 32) * 3
    with torch.no_grad():
        a, b = quantize_dynamic(mlp, activation="per_token")(x), quantize_dynamic(mlp)(x)
    assert (a - b).abs().max() <= 1e-4 * b.abs().max()
    from frontierkit.compress.quantize import apply_dynamic_int8     # the registry's load path
    from frontierkit.models import TRANSFORMS_ATTR
    q = quantize_dynamic(mlp, activation="per_token")
    spec = getattr(q, TRANSFORMS_ATTR)[-1]
    assert spec["activation"] == "per_token"
    torch.manual_seed(2)
    rebuilt = apply_dynamic_int8(nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)), spec)
    rebuilt.load_state_dict(q.state_dict())
    xb = torch.randn(4, 32) * torch.tensor([1e-2, 1.0, 10.0, 1e2])[:, None]
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(xb), q(xb), atol=0, rtol=0)
    with pytest.raises(ConfigError, match="per_token"):
        quantize_dynamic(mlp, activation="per_row")


def test_dynamic_int8_runs_integer_kernels_and_stores_int8_weights():
    """Not fake quantization: the forward dispatches FBGEMM's quantized::linear_dynamic; weights are int8."""
    q = quantize_dynamic(nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)))
    assert q[0].weight_int8.dtype == torch.int8 and not list(q.parameters())
    with torch.profiler.profile() as prof:
        q(torch.randn(2, 16))
    assert sum(e.key == "quantized::linear_dynamic" for e in prof.key_averages()) == 1
    assert [e.count for e in prof.key_averages() if e.key == "quantized::linear_dynamic"] == [2]


def test_quantize_dynamic_refuses_other_dtypes_and_layers_in_one_line():
    with pytest.raises(ConfigError, match="dtype=torch.float16 is not supported; use dtype=torch.qint8"):
        quantize_dynamic(nn.Linear(2, 2), dtype=torch.float16)
    with pytest.raises(ConfigError, match=r"layer types \['Conv2d'\] are not supported"):
        quantize_dynamic(nn.Linear(2, 2), {nn.Conv2d})


def naive_obq_order(W, H, grid, group_size, percdamp=0.01):
    """Reference: quantize columns left to right, w -= err * Hinv[i, :] / Hinv[i, i], then remove column i
    from H^-1 by Gaussian elimination (OBQ / GPTQ eq. 2-3), no Cholesky, no blocks."""
    W, H = W.double().clone(), H.double().clone()
    K = W.shape[1]
    H += percdamp * torch.diag(H).mean() * torch.eye(K, dtype=H.dtype)
    Hinv = torch.linalg.inv(H)
    Q = torch.zeros_like(W)
    for i in range(K):
        g = i // group_size
        if i % group_size == 0:
            s, z = grid.fit(W[:, i:i + group_size].float())
            s, z = s.double(), z.double()
        Q[:, i] = grid.codes(W[:, i], s, z)
        err = (W[:, i] - s * (Q[:, i] - z)) / Hinv[i, i]
        W -= err[:, None] * Hinv[i][None, :]
        Hinv -= Hinv[:, i:i + 1] @ Hinv[i:i + 1, :] / Hinv[i, i]
    return Q


def _correlated(n=512, k=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) @ torch.randn(k, k, generator=g) * 0.2      # (n, K), correlated inputs


def test_gptq_equals_naive_obq_order_reference():
    """Invariant (GPTQ §3-4): Cholesky rows of H^-1 + lazy batch updates (blocks of 32) give the codes of
    the naive sequential update with explicit H^-1 downdates; ≥ 99% of codes identical (fp32 vs fp64)."""
    torch.manual_seed(0)
    W, X = torch.randn(24, 128), _correlated()
    H = hessian([X])
    grid = Grid(bits=4, symmetric=False)
    q, _, _ = gptq(W, H, grid, group_size=32, blocksize=32)
    ref = naive_obq_order(W, H, grid, group_size=32)
    assert (q.double() == ref).float().mean() >= 0.99


@pytest.mark.parametrize("bits,group,symmetric", [(4, 32, False), (8, None, True)])
def test_gptq_output_error_is_below_round_to_nearest(bits, group, symmetric):
    """GPTQ's objective ||W X - Q X||^2 (on the calibration inputs) is ≤ 0.7x RTN's (measured ~0.4x)."""
    torch.manual_seed(0)
    W, X = torch.randn(64, 128), _correlated()
    grid = Grid(bits=bits, symmetric=symmetric)
    gs = group or 128

    def err(q, s, z):
        deq = s.repeat_interleave(gs, 1) * (q - z.repeat_interleave(gs, 1))          # (N, K)
        return ((X @ W.T - X @ deq.T) ** 2).mean()

    assert err(*gptq(W, hessian([X]), grid, group)) <= 0.7 * err(*rtn(W, grid, group))


def test_int4_kernel_equals_dequantized_matmul():
    """aten::_weight_int4pack_mm_for_cpu on our packed codes = x @ dequantized(W)^T within bf16 rounding
    of the activations (2e-2 relative)."""
    torch.manual_seed(0)
    W = torch.randn(48, 64)
    q, s, z = rtn(W, Grid(4, False), 32)
    lin = Int4WeightOnlyLinear.from_codes(q, s, z, 32, torch.randn(48))
    x = torch.randn(7, 64)
    ref = x @ lin.dequantized_weight().T + lin.bias
    assert (lin(x) - ref).abs().max() <= 2e-2 * ref.abs().max()
    assert lin.weight_uint4x2.dtype == torch.uint8 and lin.weight_uint4x2.shape == (48, 32)


def _llm_calib(model, n=4):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, model.cfg.vocab_size, (2, 32), generator=g) for _ in range(n)]


@pytest.mark.parametrize("how", ["dynamic", "int8", "int4-rtn", "int4-gptq"])
def test_quantized_llm_saves_loads_and_says_what_it_is(tiny_llm_dir, tmp_path, how):
    """Registry round trip: config.json names the transform; the reloaded model gives identical logits."""
    _, model = tiny_llm_dir
    if how == "dynamic":
        q = quantize_dynamic(model)
    else:
        bits = 8 if how == "int8" else 4
        q = quantize_weights(model, bits=bits, group_size=None if bits == 8 else 32,
                             method="gptq" if how.endswith("gptq") else "rtn", calib=_llm_calib(model))
    d = models.save(q, tmp_path / "q")
    meta = json.loads((d / "config.json").read_text())
    assert meta["kind"] == "llm" and meta["transforms"][0]["name"].startswith("compress.")
    back = models.load(d)
    x = torch.randint(0, 2048, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(back(x), q(x), atol=0, rtol=0)
        limit = 0.2 if how.startswith("int4") else 0.05          # 16 vs 255 levels on random weights
        assert (q(x) - model(x)).abs().max() < limit * model(x).abs().max()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "frontierkit.cli", *args], capture_output=True, text=True)


def test_quantized_models_run_unchanged_through_llm_and_vision_commands(tiny_llm_dir, digits_cnn, tmp_path):
    """`frontier llm eval/generate` and `frontier vision eval` load GPTQ-int4 / dynamic-int8 models through
    the registry, unchanged; perplexity within 2% of fp32, accuracy within 2 points."""
    d, model = tiny_llm_dir
    q = quantize_weights(model, bits=4, group_size=32, method="gptq", calib=_llm_calib(model))
    qd = models.save(q, tmp_path / "llm-int4", run=models.open_model(d).run)
    (qd / "tokenizer.json").write_bytes((d / "tokenizer.json").read_bytes())
    ppl = [json.loads(_cli("llm", "eval", "--model", str(p), "--batches", "2").stdout)["perplexity"] for p in (d, qd)]
    assert abs(ppl[1] / ppl[0] - 1) < 0.02
    gen = _cli("llm", "generate", "--model", str(qd), "--prompt", "def f(", "--max-new-tokens", "5")
    assert gen.returncode == 0 and gen.stdout.startswith("def f(")
    cnn_dir, cnn = digits_cnn
    vd = models.save(quantize_dynamic(cnn), tmp_path / "cnn-int8", run=models.open_model(cnn_dir).run)
    acc = [json.loads(_cli("vision", "eval", "--model", str(p)).stdout)["accuracy"] for p in (cnn_dir, vd)]
    assert acc[1] >= acc[0] - 0.02
