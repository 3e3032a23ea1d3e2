"""CKKS encrypted inference on digits (TenSEAL): plaintext vs encrypted accuracy and predictions, server ms per
encrypted inference, ciphertext sizes, for logistic regression and an x²-activation MLP.

    .venv/bin/python benchmarks/privacy_he.py [--quick] [--out DIR]

Anchor: TenSEAL's encrypted MNIST CNN tutorial, ~2 s per inference, 97.5 % encrypted vs 97.8 % plaintext;
issue 12's goal: <= 1 s per inference with identical predictions. --quick: 5 test rows per model.
Writes <out>/privacy_he(_quick).json and .md.
"""
from __future__ import annotations

from pathlib import Path

import torch

from bench_common import RESULTS, meta, table, write
from privacy_common import main


def run(quick: bool, out: Path = RESULTS) -> dict:
    import tenseal

    from frontierkit.privacy.he import PolyMLP, encrypted_inference, fit_plaintext
    from frontierkit.vision import VisionDataConfig, load_data
    torch.set_num_threads(1)
    n = 5 if quick else 60
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    x, xt = x.flatten(1), xt.flatten(1)
    rows = []
    for name, hidden, preset in (("logistic regression", 0, "depth1"), ("x² MLP 64-16-10", 16, "depth3")):
        model = fit_plaintext(PolyMLP(hidden=hidden), x, y)
        res = encrypted_inference(model, xt[:n], preset)
        with torch.no_grad():
            full_acc = (model(xt).argmax(-1) == yt).float().mean().item()
        rows.append({"model": name, "preset": preset, "rows": n, "plain_test_acc (all)": round(full_acc, 4),
                     "plain_acc (rows)": round((res.plain_logits.argmax(-1) == yt[:n]).float().mean().item(), 4),
                     "encrypted_acc (rows)": round((res.enc_logits.argmax(-1) == yt[:n]).float().mean().item(), 4),
                     "same_predictions": res.same_predictions, "max_abs_logit_error": f"{res.max_abs_error:.1e}",
                     "ms_per_inference": round(res.ms_per_inference), "ciphertext_KiB": round(res.ciphertext_bytes / 1024)})
        print(rows[-1], flush=True)
    name = "privacy_he_quick" if quick else "privacy_he"
    info = {**meta(f"python benchmarks/privacy_he.py{' --quick' if quick else ''}", tenseal=tenseal.__version__),
            "rows": rows}
    body = ["Client encrypts [x, 1] (64 digits pixels), server evaluates with a secret-key-free context, client "
            "decrypts; ms = server time per row (1 thread), ciphertext = one encrypted input.", "", *table(rows)]
    write(name, info, body, out)
    return info


if __name__ == "__main__":
    raise SystemExit(main(run, __doc__.splitlines()[0], "5 test rows per model"))
