"""Pruning and distillation of the digits CNN side by side: unstructured 30% (global L1 + fine-tune),
structured 50% channels (smaller dense model; measured CPU speedup), a distilled student with a fraction
of the teacher's parameters vs the same student trained without the teacher, and accuracy vs sparsity.

    python benchmarks/compress_vision.py            # teacher 800 steps, fine-tunes 200, students 800
    python benchmarks/compress_vision.py --quick    # teacher 300 steps, fine-tunes 100, students 300
"""
from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from llm_common import interleaved_best, write_results  # noqa: E402

from frontierkit import models  # noqa: E402
from frontierkit.compress.distill import distill_classifier  # noqa: E402
from frontierkit.compress.evaluate import accuracy  # noqa: E402
from frontierkit.compress.prune import finetune_classifier, prune_global  # noqa: E402
from frontierkit.compress.structured import prune_channels  # noqa: E402
from frontierkit.data import cache_dir  # noqa: E402
from frontierkit.vision.models import build_model  # noqa: E402
from frontierkit.vision.train import run_config_for, train_classifier  # noqa: E402


def teacher(steps: int):
    out = cache_dir() / "compress-bench" / f"cnn-{steps}"
    if not (out / "model" / "config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        train_classifier(run_config_for("cnn", steps=steps), out)
    return models.open_model(out / "model")


def params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def sparsity_curve(loaded, xtr, ytr, xte, yte, ft: int) -> list[dict]:
    rows = []
    for s in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9):
        m = prune_global(copy.deepcopy(loaded.model), s)
        before = accuracy(m, xte, yte)
        finetune_classifier(m, xtr, ytr, steps=ft)
        rows.append({"sparsity": s, "acc_pruned": before, "acc_finetuned": accuracy(m, xte, yte)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(1)
    T_steps, ft, st = (300, 100, 300) if args.quick else (800, 200, 800)
    loaded = teacher(T_steps)
    cnn = loaded.model
    (xtr, ytr), (xte, yte) = loaded.dataset("train"), loaded.dataset("test")
    base = accuracy(cnn, xte, yte)
    rows = [{"method": "fp32 teacher CNN", "params": params(cnn), "test_acc": base}]

    unstructured = prune_global(copy.deepcopy(cnn), 0.3)
    finetune_classifier(unstructured, xtr, ytr, steps=ft)
    rows.append({"method": "unstructured 30% + fine-tune", "params": params(cnn), "test_acc": accuracy(unstructured, xte, yte)})

    small = finetune_classifier(prune_channels(cnn, 0.5), xtr, ytr, steps=ft)
    x = xte[:64]
    t = interleaved_best({"dense": lambda: cnn(x), "pruned": lambda: small(x)}, rounds=7, warmup=2)
    rows.append({"method": "structured 50% channels + fine-tune", "params": params(small),
                 "test_acc": accuracy(small, xte, yte), "speedup_batch64": t["dense"] / t["pruned"]})

    kd = distill_classifier(loaded, width=16, steps=st, T=4.0, alpha=0.5)
    torch.manual_seed(0)
    alone = finetune_classifier(build_model({**loaded.config, "width": 16}), xtr, ytr, steps=st, lr=3e-3)
    rows.append({"method": "student width 16, distilled (T=4, alpha=0.5)", "params": params(kd), "test_acc": accuracy(kd, xte, yte)})
    rows.append({"method": "student width 16, no teacher", "params": params(alone), "test_acc": accuracy(alone, xte, yte)})
    curve = sparsity_curve(loaded, xtr, ytr, xte, yte, ft)
    summary = {"unstructured30_loss_points": 100 * (base - rows[1]["test_acc"]), "goal_unstructured": 0.5,
               "structured50_speedup": rows[2]["speedup_batch64"], "goal_speedup": 1.6,
               "structured50_loss_points": 100 * (base - rows[2]["test_acc"]), "goal_structured_loss": 1.0,
               "student_params_ratio": rows[3]["params"] / rows[0]["params"],
               "student_acc_ratio": rows[3]["test_acc"] / base, "goal_student_acc_ratio": 0.97,
               "kd_beats_alone": rows[3]["test_acc"] > rows[4]["test_acc"]}
    for r in curve:
        rows.append({"method": f"global {int(100 * r['sparsity'])}% (before fine-tune: {r['acc_pruned']:.4f})",
                     "params": params(cnn), "test_acc": r["acc_finetuned"]})
    write_results("compress_vision" + ("_quick" if args.quick else ""), rows, summary,
                  notes=f"Digits CNN (450 test digits). Fine-tunes: {ft} AdamW steps through the shared Trainer; "
                        f"students: {st} steps. Speedup: batch of 64 test images, 1 thread, best of 7 interleaved "
                        f"rounds of process CPU time.")


if __name__ == "__main__":
    main()
