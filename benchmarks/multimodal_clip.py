"""CLIP on shapes: zero-shot accuracy and retrieval recall on colour x shape x position combinations never
seen in training, against a supervised classifier of the same vision tower; and training speed of our CLIP
vs transformers' CLIPModel (same weights, same batch, forward + backward).

    python benchmarks/multimodal_clip.py            # full: patches of 4 px, 1200 steps (~10 min on 2 cores)
    python benchmarks/multimodal_clip.py --quick    # patches of 8 px, 200 steps
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, meta, table, write  # noqa: E402


def speed(cfg, steps: int = 10) -> dict[str, float]:
    """Seconds per training step (forward + InfoNCE + backward) of ours and transformers' CLIPModel."""
    from transformers import CLIPModel

    from frontierkit.multimodal import CLIP, clip_loss, to_hf
    from frontierkit.multimodal.data import WordTokenizer
    from frontierkit.multimodal.train import split, training_texts

    torch.manual_seed(0)
    ours = CLIP(cfg.model)
    with tempfile.TemporaryDirectory() as tmp:
        to_hf(ours, tmp)
        hf = CLIPModel.from_pretrained(tmp)
    tr = split(cfg.data, "train")
    ids, valid = WordTokenizer().batch(training_texts(tr, 0.0, 0)[:64], cfg.model.text.context_length)
    pixels = tr.images[:64]

    def ours_step():
        clip_loss(ours(pixels, ids, valid)).backward()

    def hf_step():
        hf(input_ids=ids, pixel_values=pixels, attention_mask=valid.long(), return_loss=True).loss.backward()

    times = {"ours": [], "transformers": []}
    for _ in range(2):
        ours_step(), hf_step()
    for _ in range(steps):           # interleaved, so both see the same machine load
        for name, fn in (("ours", ours_step), ("transformers", hf_step)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"ours_s_per_step": med["ours"], "transformers_s_per_step": med["transformers"],
            "speedup": med["transformers"] / med["ours"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_multimodal_clip"))
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(1)
    from frontierkit.multimodal.train import (ClipRunConfig, default_clip_train, quick_clip_config, train_clip,
                                              train_supervised)
    cfg = quick_clip_config(200) if args.quick else ClipRunConfig(train=replace(default_clip_train(), log_every=100))
    name = "multimodal_clip_quick" if args.quick else "multimodal_clip"
    info = meta("python benchmarks/multimodal_clip.py" + (" --quick" if args.quick else ""))
    t0 = time.perf_counter()
    _, m = train_clip(cfg, Path(args.out) / ("quick" if args.quick else "full"), quiet=True)
    t_clip = time.perf_counter() - t0
    t0 = time.perf_counter()
    sup = train_supervised(cfg, Path(args.out) / ("sup_quick" if args.quick else "sup_full"))
    t_sup = time.perf_counter() - t0
    rows = [{"model": "CLIP zero-shot (prompt ensemble)", "class": m["zeroshot_class"], "color": m["zeroshot_color"],
             "shape": m["zeroshot_shape"], "position": m["zeroshot_position"], "seconds": round(t_clip, 1)},
            {"model": "supervised, same vision tower", "class": sup["class"], "color": sup["color"],
             "shape": sup["shape"], "position": "", "seconds": round(t_sup, 1)}]
    ret = [{k: v for k, v in m.items() if "r@" in k}]
    sp = speed(cfg)
    info.update(rows=rows, retrieval=ret, speed=sp, steps=cfg.train.steps, logit_scale=m["logit_scale"],
                patch_size=cfg.model.vision.patch_size, n_images=cfg.data.n)
    body = [f"CLIP ({cfg.train.steps} steps, patch {cfg.model.vision.patch_size}, {cfg.data.n} images, 20% of the "
            f"colour x shape x position combinations held out). Accuracy on held-out combinations:", "",
            *table(rows), "", "Retrieval on held-out pairs (a caption counts when its text is the query's):", "",
            *table(ret), "", "Training step (batch 64, forward + loss + backward, median of 10, 1 thread):", "",
            *table([sp])]
    write(name, info, body)


if __name__ == "__main__":
    main()
