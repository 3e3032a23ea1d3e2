"""Tour section: ε vs steps from the RDP accountant, DP-SGD accuracy vs ε on digits, FedAvg vs FedProx on
non-IID clients, and a CKKS encrypted prediction round trip with its timing."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..report import Section, TourContext

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
BENCH = RESULTS / "privacy_dp.json"


def _epsilon_figure(q: float, delta: float):
    """ε(δ) after n steps for three noise multipliers (one RDP curve per σ, scaled by n)."""
    import matplotlib.pyplot as plt

    from .accountant import DEFAULT_ORDERS, epsilon_from_rdp, rdp_curve
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = list(range(10, 2001, 40))
    for sigma in (0.8, 1.1, 2.0):
        one = rdp_curve(q, sigma, 1)
        ax.plot(steps, [epsilon_from_rdp(one * n, DEFAULT_ORDERS, delta)[0] for n in steps], label=f"σ = {sigma}")
    ax.set(xlabel="DP-SGD steps", ylabel=f"ε (δ = {delta:g})", title=f"RDP accountant, q = {q:.3f}")
    ax.legend()
    return fig


def _dp_rows(ctx: TourContext) -> tuple[list[dict], str]:
    """DP accuracy per ε: the benchmark's numbers when present, else two short runs (ε = 8 and ∞)."""
    if BENCH.is_file():
        bench = json.loads(BENCH.read_text())
        return bench["rows"], (f"benchmarks/results/privacy_dp.json ({bench.get('date', '')}, "
                               f"{bench.get('command', '')})")
    from .dp import DPConfig, DPRunConfig, train_dp
    rows = []
    for eps, private in ((8.0, True), (8.0, False)):
        cfg = DPRunConfig()
        cfg = replace(cfg, train=replace(cfg.train, steps=40 if ctx.quick else 150),
                      dp=DPConfig(epsilon=eps, private=private))
        _, rec = train_dp(cfg, ctx.out / f"dp-{'eps8' if private else 'nonprivate'}", quiet=ctx.quiet)
        rows.append({"epsilon": round(rec["epsilon"], 2) if private else "inf",
                     "sigma": round(rec["noise_multiplier"], 3),
                     "steps": rec["steps"], "test_acc": round(rec["test_acc"], 3)})
    return rows, "short runs made now (run benchmarks/privacy_dp.py for the full table)"


def _fl_figure(ctx: TourContext):
    """FedAvg vs FedProx test accuracy per round on Dirichlet(0.5) and 2-labels-per-client digits."""
    import matplotlib.pyplot as plt
    import torch

    from ..vision import VisionDataConfig, accuracy, build_model, load_data
    from .federated import FLConfig, federated_train
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rows = []
    for part, extra in (("iid", {}), ("labels", {"labels_per_client": 2})):
        for alg in ("fedavg", "fedprox"):
            torch.manual_seed(0)
            cfg = FLConfig(algorithm=alg, partition=part, rounds=6 if ctx.quick else 20, **extra)
            _, hist = federated_train(build_model("mlp", width=16), x, y, cfg, evaluate=lambda m: accuracy(m, xt, yt))
            ax.plot([h["round"] for h in hist], [h["test_acc"] for h in hist], label=f"{alg}, {part}")
            rows.append({"partition": part, "algorithm": alg, "rounds": cfg.rounds,
                         "test_acc": round(hist[-1]["test_acc"], 3)})
    ax.set(xlabel="round", ylabel="test accuracy", title="10 digits clients, MLP")
    ax.legend()
    return fig, rows


def _he_text() -> str:
    """One encrypted logistic-regression prediction: client encrypts, server computes, client decrypts."""
    try:
        import tenseal  # noqa: F401
    except ImportError:
        return "tenseal is not installed (pip install frontierkit[he]); encrypted inference skipped"
    from ..vision import VisionDataConfig, load_data
    from .he import PolyMLP, encrypted_inference, fit_plaintext
    (x, y), (xt, _) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    model = fit_plaintext(PolyMLP(hidden=0), x.flatten(1), y, steps=150)
    r = encrypted_inference(model, xt[:2], "depth1")
    return (f"CKKS (poly degree 4096), logistic regression on 64 digits pixels, 2 test rows\n"
            f"plaintext predictions {r.plain_logits.argmax(-1).tolist()}, "
            f"decrypted {r.enc_logits.argmax(-1).tolist()}\n"
            f"max |logit error| {r.max_abs_error:.2e}, server time {r.ms_per_inference:.0f} ms per inference, "
            f"ciphertext {r.ciphertext_bytes / 1024:.0f} KiB")


def tour(ctx: TourContext) -> Section:
    import torch
    torch.set_num_threads(1)
    dp_rows, source = _dp_rows(ctx)
    fl_fig, fl_rows = _fl_figure(ctx)
    tables = [(f"DP-SGD digits accuracy vs ε, δ = 1e-5 — {source}", dp_rows),
              ("federated learning, final test accuracy (runs made now)", fl_rows)]
    for name, caption in (("privacy_fl", "federated learning benchmark, 100 rounds"),
                          ("privacy_he", "CKKS encrypted inference benchmark")):
        if (RESULTS / f"{name}.json").is_file():
            bench = json.loads((RESULTS / f"{name}.json").read_text())
            tables.append((f"{caption} (benchmarks/results/{name}.json, {bench.get('date', '')})", bench["rows"]))
    return Section(
        title="Privacy: DP-SGD + RDP accountant, federated learning, CKKS",
        summary="The RDP accountant of the sampled Gaussian mechanism equals Opacus' to 1e-6; DP-SGD clips each "
                "example's gradient (torch.func, equal to Opacus' GradSampleModule to 1e-6), adds Gaussian noise "
                "and stops at its ε budget. FedAvg/FedProx run in-process; pairwise-mask secure aggregation gives "
                "the plain sum to 1e-6. CKKS encrypted inference gives the plaintext predictions.",
        figures=[("ε vs steps (δ = 1e-5)", _epsilon_figure(128 / 1348, 1e-5)),
                 ("FedAvg vs FedProx, accuracy per round", fl_fig)],
        tables=tables,
        text=[("encrypted prediction round trip", _he_text())])
