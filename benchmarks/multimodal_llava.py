"""LLaVA on the shapes question/answer pairs: exact-match VQA on held-out images (colour x shape x position
combinations never seen in training) per question type, against a text-only baseline (same LLM, no image)
and the ablation "no stage 1" (Liu et al. 2023 §4.2). The vision tower is the CLIP of multimodal_clip.py
(its run folder is reused when present, else a CLIP is trained first).

    python benchmarks/multimodal_llava.py            # after benchmarks/multimodal_clip.py
    python benchmarks/multimodal_llava.py --quick
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, meta, table, write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clip", default=str(ROOT / "runs" / "bench_multimodal_clip"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_multimodal_llava"))
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(1)
    from frontierkit import models
    from frontierkit.config import from_dict
    from frontierkit.multimodal.train import ClipRunConfig, quick_clip_config, train_clip
    from frontierkit.multimodal.vqa import LlavaRunConfig, quick_llava_config, train_llava

    clip_dir = Path(args.clip) / ("quick" if args.quick else "full")
    if (clip_dir / "model").is_dir():
        loaded = models.open_model(clip_dir, kind="clip")
        clip, data = loaded.model, from_dict(ClipRunConfig, loaded.run, prefix="").data
    else:
        ccfg = quick_clip_config(200) if args.quick else ClipRunConfig()
        clip, data = train_clip(ccfg, clip_dir, quiet=True)[0], ccfg.data
    cfg = quick_llava_config(data=data) if args.quick else LlavaRunConfig(data=data)
    name = "multimodal_llava_quick" if args.quick else "multimodal_llava"
    info = meta("python benchmarks/multimodal_llava.py" + (" --quick" if args.quick else ""))
    t0 = time.perf_counter()
    _, res = train_llava(cfg, Path(args.out) / ("quick" if args.quick else "full"), clip=clip, quiet=True)
    seconds = time.perf_counter() - t0
    labels = {"llava": "LLaVA (stage 1 + stage 2)", "text_only": "text-only baseline (same LLM, no image)",
              "no_stage1": "LLaVA without stage 1"}
    rows = [{"model": labels[k], **r} for k, r in res.items()]
    steps = {s: getattr(cfg, s).steps for s in ("pretrain", "stage1", "stage2")}
    info.update(rows=rows, seconds=round(seconds, 1), steps=steps, eval_pairs=cfg.eval_n)
    body = [f"Exact match on {cfg.eval_n} held-out (image, question) pairs; steps {steps}; "
            f"{seconds:.0f} s for all three runs.", "", *table(rows)]
    write(name, info, body)


if __name__ == "__main__":
    main()
