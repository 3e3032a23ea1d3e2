"""UNet speed: frontierkit.diffusion's UNet2DConditionModel vs diffusers' on the same weights (ours read from the
diffusers folder by from_diffusers, outputs checked equal), side by side: one forward, a training step (forward +
backward) and a 2-step-per-sample DDIM sampling loop with classifier-free guidance (the batch doubled, Ho &
Salimans 2022), on tiny-but-real configs (SD-style 3 levels at 32x32 latents with 77 text tokens, SDXL-style
micro-conditioning, and the pixel DDPM for digits). One thread, process CPU time (the machine is shared), median
of >= --repeats runs (more for small models, see --min-seconds) after a warm-up, alternating which goes first.

    .venv/bin/python benchmarks/diffusion_unet_speed.py [--quick] [--write]

With --write: benchmarks/results/diffusion_unet_speed.json and .md (--quick: diffusion_unet_speed_quick.*);
without it a dated folder under /tmp/frontierkit-bench.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_write_arg, meta, table, write  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "sd-style 3-level, 4x32x32 latents, 77 tokens": dict(
        sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64, 128),
        layers_per_block=2, cross_attention_dim=64, attention_head_dim=(2, 4, 8), norm_num_groups=32),
    "sdxl-style text_time, 2-layer transformers, 4x32x32": dict(
        sample_size=32, in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(64, 128), layers_per_block=2,
        cross_attention_dim=64, attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2), norm_num_groups=32,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=16,
        projection_class_embeddings_input_dim=64 + 6 * 16),
    "pixel DDPM (digits), class-conditional, 1x16x16": dict(
        sample_size=16, in_channels=1, out_channels=1, down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2D", block_out_channels=(32, 64),
        layers_per_block=1, norm_num_groups=8, num_class_embeds=10),
}


def cpu_time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def inputs(cfg: dict[str, Any], batch: int, g: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
    """A sample and the conditioning keyword arguments for ``cfg`` (text tokens, class labels, SDXL ids)."""
    s = cfg["sample_size"]
    x = torch.randn(batch, cfg["in_channels"], s, s, generator=g)
    kw: dict[str, Any] = {"encoder_hidden_states": None}
    if "cross_attention_dim" in cfg:
        kw["encoder_hidden_states"] = torch.randn(batch, 77, cfg["cross_attention_dim"], generator=g)
    if cfg.get("num_class_embeds"):
        kw["class_labels"] = torch.arange(batch) % cfg["num_class_embeds"]
    if cfg.get("addition_embed_type") == "text_time":
        pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(batch, pooled, generator=g),
                                   "time_ids": torch.tensor([[256.0, 256, 0, 0, 256, 256]]).repeat(batch, 1)}
    return x, kw


def doubled(kw: dict[str, Any]) -> dict[str, Any]:
    """Conditioning for the [unconditional; conditional] batch of classifier-free guidance (null = zeros)."""
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if k == "encoder_hidden_states" and v is not None:
            out[k] = torch.cat([torch.zeros_like(v), v])
        elif k == "class_labels":
            out[k] = torch.cat([v, v])
        elif k == "added_cond_kwargs":
            out[k] = {n: torch.cat([t, t]) for n, t in v.items()}
        else:
            out[k] = v
    return out


def ddim_cfg(model: Callable[..., torch.Tensor], x: torch.Tensor, kw: dict[str, Any], steps: int,
             scale: float = 5.0) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021 eq. 12, η = 0) with classifier-free guidance ε_u + s(ε_c − ε_u)
    over SD's scaled-linear schedule; the same code drives both UNets."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    abar = torch.cumprod(1 - betas, 0)
    ts = torch.linspace(999, 0, steps).round().long()
    kw2 = doubled(kw)
    for i, t in enumerate(ts):
        eps_u, eps_c = model(torch.cat([x, x]), t, **kw2).chunk(2)
        eps = eps_u + scale * (eps_c - eps_u)
        a_t = abar[t]
        a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


def bench_config(name: str, cfg: dict[str, Any], args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    import diffusers

    from frontierkit.diffusion.convert import from_diffusers

    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**cfg).eval()
    ref.save_pretrained(tmp / "unet")
    ours = from_diffusers(tmp / "unet")
    g = torch.Generator().manual_seed(1)
    x, kw = inputs(cfg, args.batch, g)
    t = torch.full((args.batch,), 500)
    theirs_fn = lambda *a, **k: ref(*a, **k).sample                          # noqa: E731
    tasks: dict[str, Callable[[], torch.Tensor]] = {}
    for label, model in (("ours", ours), ("diffusers", theirs_fn)):
        def forward(m=model):
            with torch.no_grad():
                return m(x, t, **kw)

        def train_step(m=model, module=ours if label == "ours" else ref):
            module.zero_grad(set_to_none=True)
            out = m(x, t, **kw)
            out.pow(2).mean().backward()
            return out.detach()

        def sample(m=model):
            with torch.no_grad():
                return ddim_cfg(m, x, kw, args.steps)
        tasks[f"{label}:forward"] = forward
        tasks[f"{label}:train step (fwd+bwd)"] = train_step
        tasks[f"{label}:sampling, {args.steps} DDIM steps + CFG"] = sample
    rows = []
    for what in ("forward", "train step (fwd+bwd)", f"sampling, {args.steps} DDIM steps + CFG"):
        times: dict[str, list[float]] = {"ours": [], "diffusers": []}
        outs: dict[str, torch.Tensor] = {}
        for who in times:                                                      # warm-up (oneDNN primitives)
            tasks[f"{who}:{what}"]()
        r = 0
        while r < args.repeats or (sum(times["ours"]) < args.min_seconds and r < 60):   # alternate who goes first
            r += 1
            for who in (("ours", "diffusers") if r % 2 else ("diffusers", "ours")):
                tt, outs[who] = cpu_time(tasks[f"{who}:{what}"])
                times[who].append(tt)
        ours_t, theirs_t, a, b = times["ours"], times["diffusers"], outs["ours"], outs["diffusers"]
        o, d = statistics.median(ours_t), statistics.median(theirs_t)
        rows.append({"config": name, "batch": args.batch, "task": what, "runs": len(ours_t),
                     "ours_ms": round(1000 * o, 1), "diffusers_ms": round(1000 * d, 1), "speedup": round(d / o, 3),
                     "max_abs_diff": float((a - b).abs().max())})
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description="UNet2DConditionModel forward / train step / sampling speed, ours vs "
                                            "diffusers on the same weights (writes benchmarks/results/"
                                            "diffusion_unet_speed.{json,md})")
    p.add_argument("--quick", action="store_true", help="the SD-style config only, 3 repeats")
    p.add_argument("--batch", type=int, default=2, help="samples per call (the sampling loop runs 2x for CFG)")
    p.add_argument("--steps", type=int, default=2, help="DDIM steps per sample in the sampling loop")
    p.add_argument("--repeats", type=int, default=5, help="alternating timed runs per task (median), at least")
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="keep repeating (up to 60 runs) until ours has run this long per task (small models)")
    args = add_write_arg(p).parse_args()
    if args.quick:
        args.repeats, args.min_seconds = 3, 1.0
    torch.set_num_threads(1)
    import diffusers

    names = list(CONFIGS)[:1] if args.quick else list(CONFIGS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            (Path(tmp) / str(i)).mkdir()
            rows += bench_config(name, CONFIGS[name], args, Path(tmp) / str(i))
    command = "python benchmarks/diffusion_unet_speed.py --write" + (" --quick" if args.quick else "")
    info = {**meta(command, diffusers=diffusers.__version__), "configs": {n: CONFIGS[n] for n in names},
            "rows": rows}
    body = ["UNet2DConditionModel, same weights (ours loaded from diffusers' save_pretrained folder); median process "
            f"CPU time of >= {args.repeats} runs (and >= {args.min_seconds} s) after a warm-up, alternating which goes "
            "first, 1 thread; "
            "speedup = diffusers time / ours (goal >= 1x); "
            "max_abs_diff = largest |ours - diffusers| of that task's output. CPU shared with other jobs: "
            "expect a few % noise.\n", *table(rows)]
    write("diffusion_unet_speed" + ("_quick" if args.quick else ""), info, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
