"""CLIP on shapes: zero-shot accuracy and retrieval recall on colour x shape x position combinations never
seen in training, against a supervised classifier of the same vision tower; and training speed of our CLIP
vs transformers' CLIPModel (same weights, same batch, forward + backward).

    python benchmarks/multimodal_clip.py            # full: 48 px images, 16 px patches, 1200 steps, + shape probe
    python benchmarks/multimodal_clip.py --quick    # the same model, 200 steps, 3000 images
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


PROBES = ((32, 4), (48, 8), (48, 16))
"""(image side, patch side) of the shape probe: the old recipe, patches that cut shapes in four, the patch grid
= the generator's 3 x 3 position grid"""


def shape_probe(cfg, out: Path, steps: int = 300) -> list[dict]:
    """Can the vision tower see shape at all? The same tower trained on the shape label alone (4 classes)."""
    from frontierkit.multimodal.train import train_supervised
    rows = []
    for size, patch in PROBES:
        c = replace(cfg, data=replace(cfg.data, size=size),
                    model=replace(cfg.model, vision=replace(cfg.model.vision, image_size=size, patch_size=patch)),
                    train=replace(cfg.train, steps=steps, log_every=1000))
        t0 = time.perf_counter()
        r = train_supervised(c, out / f"probe_{size}_{patch}", target="shape")
        rows.append({"image": size, "patch": patch, "tokens": (size // patch) ** 2, "train_shape": r["train_shape"],
                     "held_out_shape": r["shape"], "seconds": round(time.perf_counter() - t0, 1)})
    return rows


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
    probe = [] if args.quick else shape_probe(cfg, Path(args.out) / "probe")
    sp = speed(cfg)
    info.update(rows=rows, retrieval=ret, speed=sp, steps=cfg.train.steps, logit_scale=m["logit_scale"],
                patch_size=cfg.model.vision.patch_size, image_size=cfg.data.size, n_images=cfg.data.n,
                shape_probe=probe)
    body = [f"CLIP ({cfg.train.steps} steps, {cfg.data.size} px images, patch {cfg.model.vision.patch_size}, "
            f"{cfg.data.n} images, 20% of the colour x shape x position combinations held out; 2 CPU cores shared "
            f"with other jobs, so seconds are loaded-machine times). Accuracy on held-out combinations:", "",
            *table(rows), "", "Retrieval on held-out pairs (a caption counts when its text is the query's):", "",
            *table(ret), "", "Training step (batch 64, forward + loss + backward, median of 10, 1 thread):", "",
            *table([sp])]
    if probe:
        body += ["", "Shape probe: the same vision tower (2 layers, width 64) trained on the shape label alone, 300 "
                 "steps; accuracy on 1000 training images and on the held-out combinations (chance 0.25):", "",
                 *table(probe)]
    write(name, info, body)


if __name__ == "__main__":
    main()
