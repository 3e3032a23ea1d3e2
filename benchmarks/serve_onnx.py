"""onnxruntime vs eager PyTorch latency for each kit classifier (MLP, CNN, ResNet, ViT on 3x32x32 images,
10 classes) at batch 1 and 64, side by side, after ``frontier serve export-onnx``'s export (torch's dynamo
exporter; the exporter path and the max |ORT - eager| of each model are in the table).

    python benchmarks/serve_onnx.py            # 30 timing rounds
    python benchmarks/serve_onnx.py --quick    # 5 rounds
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from llm_common import interleaved_best, write_results  # noqa: E402

from frontierkit import models  # noqa: E402
from frontierkit.serve.onnx_export import export_model, session  # noqa: E402
from frontierkit.vision.models import build_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 timing rounds")
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    import onnxruntime
    torch.set_num_threads(1)
    rounds = 5 if args.quick else 30
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in ("mlp", "cnn", "resnet", "vit"):
            torch.manual_seed(0)
            model = build_model(dict(name=name, in_channels=3, image_size=32, num_classes=10,
                                     patch_size=4 if name == "vit" else 2)).eval()
            models.save(model, Path(d) / name)
            rep = export_model(Path(d) / name, Path(d) / f"{name}.onnx")
            sess = session(Path(d) / f"{name}.onnx", threads=1)
            for b in (1, 64):
                x = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
                xn = x.numpy()
                with torch.inference_mode():
                    fns = {"eager": lambda: model(x), "ort": lambda: sess.run(None, {"pixel_values": xn})}
                    t = interleaved_best(fns, rounds=rounds)
                    diff = float((torch.from_numpy(sess.run(None, {"pixel_values": xn})[0]) - model(x)).abs().max())
                rows.append({"model": name, "batch": b, "eager_ms": 1e3 * t["eager"], "onnxruntime_ms": 1e3 * t["ort"],
                             "speedup": t["eager"] / t["ort"], "max_abs_diff": diff, "exporter": rep["exporter"],
                             "params": sum(p.numel() for p in model.parameters())})
                print(rows[-1], file=sys.stderr)
    write_results("serve_onnx", rows, {f"speedup {r['model']} b{r['batch']}": r["speedup"] for r in rows} |
                  {"max_abs_diff": max(r["max_abs_diff"] for r in rows)},
                  notes=f"fp32, 1 thread (torch.set_num_threads(1); onnxruntime CPUExecutionProvider with "
                        f"intra_op_num_threads=1), onnxruntime {onnxruntime.__version__}; best of "
                        f"{rounds} interleaved rounds of process CPU time; untrained weights (latency does not "
                        f"depend on them).")


if __name__ == "__main__":
    main()
