"""Test accuracy of the kit's classifiers with docs/vision.md's recipes: MLP, CNN, ResNet, ViT on digits
(default recipe, 800 steps, and 400 steps), ViT on 2x-upscaled digits with 4x4 patches, ResNet on
synthetic shapes (configs/vision/resnet_shapes.toml). One thread; seconds are process CPU time.

    .venv/bin/python benchmarks/vision_digits.py [--quick] --write

Writes benchmarks/results/vision_digits.json and .md (the numbers README and docs/vision.md quote).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, add_write_arg, meta, table, write  # noqa: E402

# (row name, model, data, upscale, steps, model overrides)
RUNS = [("mlp", "mlp", "digits", 1, 800, {}), ("cnn", "cnn", "digits", 1, 800, {}),
        ("resnet", "resnet", "digits", 1, 800, {}), ("vit", "vit", "digits", 1, 800, {}),
        ("cnn@400", "cnn", "digits", 1, 400, {}), ("resnet@400", "resnet", "digits", 1, 400, {}),
        ("vit_up2_p4@400", "vit", "digits", 2, 400, {"patch_size": 4})]


def run_one(cfg, tmp: Path) -> dict:
    from frontierkit.vision.train import train_classifier
    t0 = time.process_time()
    _, metrics = train_classifier(cfg, tmp, quiet=True)
    return {"test_acc": round(100 * metrics["test_acc"], 2), "steps": metrics["steps"],
            "cpu_s": round(time.process_time() - t0, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="digits runs only, 100 steps (a smoke run, not the quoted numbers)")
    args = add_write_arg(p).parse_args()
    import dataclasses

    from frontierkit.config import load_config
    from frontierkit.vision.train import VisionRunConfig, run_config_for
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, model, data, up, steps, over) in enumerate(RUNS):
            cfg = run_config_for(model, data=data, upscale=up, steps=100 if args.quick else steps)
            if over:
                cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **over))
            rows.append({"run": name, "data": f"digits{' x' + str(up) if up > 1 else ''}", **run_one(cfg, Path(tmp) / str(i))})
            print(rows[-1], file=sys.stderr, flush=True)
        if not args.quick:
            cfg = load_config(VisionRunConfig, str(ROOT / "configs/vision/resnet_shapes.toml"), [])
            rows.append({"run": "resnet_shapes", "data": "shapes 32px", **run_one(cfg, Path(tmp) / "shapes")})
    info = {**meta("python benchmarks/vision_digits.py" + (" --quick" if args.quick else "") + " --write"),
            "accuracy": {r["run"]: r["test_acc"] for r in rows}, "steps": {r["run"]: r["steps"] for r in rows},
            "rows": rows}
    write("vision_digits" + ("_quick" if args.quick else ""), info,
          ["Test accuracy (%) on the held-out split (digits: 450 images; shapes: 500).", "", *table(rows)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
