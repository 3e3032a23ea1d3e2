"""Federated learning on digits, 10 clients: FedAvg vs FedProx over IID, Dirichlet(0.5) and 1-label-per-client
partitions, against centralised training (the same SGD on all the data), with and without stragglers, plus the
secure-aggregation cost.

    .venv/bin/python benchmarks/privacy_fl.py [--quick] [--out DIR] [--write]

Issue 12's targets: IID within 1 point of centralised, Dirichlet(0.5) within 2, and on 1 label per client
FedProx ahead of FedAvg (the ordering of Flower's niid_bench). The 1-label rows run 3 seeds (partition, client
order, initial weights) and report mean ± std. Two settings: statistical heterogeneity alone (every client
finishes its E epochs), and systems heterogeneity on top (Li et al. 2020, Sec. 5.1; Flower's fedprox baseline):
50 % of each round's clients are stragglers that finish only 1..E-1 epochs; FedAvg drops them, FedProx
aggregates their partial work (μ = 0 isolates the partial work from the proximal term). A third setting, heavy
local drift, is niid_bench's regime (Flower's baseline: 10 local epochs of batch-64 SGD, lr 0.01, momentum 0.9 on
6000 MNIST images, ~940 local steps a round, where FedAvg collapses to 10 %): a digits client has ~135 images, so
batch 8 and 10 local epochs give ~170 local steps a round; MLP width 64, 20 rounds, no stragglers, μ over
NIID-Bench's grid {0.001, 0.01, 0.1, 1}.
--quick: 8 rounds of 2 local epochs, one seed (far from converged); the heavy-drift group runs only in full.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from bench_common import RESULTS, meta, table, write
from privacy_common import main


def settings(quick: bool) -> dict:
    return {"rounds": 8 if quick else 100, "local_epochs": 2, "central_epochs": 8 if quick else 50,
            "clients": 10, "width": 16, "lr": 0.1, "batch_size": 16, "mu": [0.1, 1.0],
            "seeds": [0] if quick else [0, 1, 2], "label_mu": [0.1], "stragglers": 0.5, "straggler_mu": [0.0, 0.1],
            "drift": None if quick else {"local_epochs": 10, "batch_size": 8, "lr": 0.01, "momentum": 0.9, "rounds": 20,
                                         "width": 64, "mu": [0.001, 0.01, 0.1, 1.0]}}


def run(quick: bool, out: Path = RESULTS) -> dict:
    from frontierkit.privacy.federated import FLConfig, federated_train, local_update
    from frontierkit.privacy.secagg import secure_weighted_average
    from frontierkit.vision import VisionDataConfig, accuracy, build_model, load_data
    torch.set_num_threads(1)
    s = settings(quick)
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")

    def model(seed: int = 0, width: int | None = None):
        torch.manual_seed(seed)
        return build_model("mlp", width=width or s["width"])

    def fl(seed: int = 0, aggregate=None, width: int | None = None, **fields) -> tuple[float, float]:
        fields = {"rounds": s["rounds"], "local_epochs": s["local_epochs"], "lr": s["lr"],
                  "batch_size": s["batch_size"], **fields}
        cfg = FLConfig(clients=s["clients"], seed=seed, **fields)
        t = time.perf_counter()
        _, hist = federated_train(model(seed, width), x, y, cfg, aggregate=aggregate,
                                  evaluate=lambda m: accuracy(m, xt, yt))
        return hist[-1]["test_acc"], time.perf_counter() - t

    central = model()
    t = time.perf_counter()
    local_update(central, x, y, epochs=s["central_epochs"], batch_size=s["batch_size"], lr=s["lr"])
    central_acc = accuracy(central, xt, yt)
    rows = [{"partition": "centralised", "algorithm": "sgd", "mu": "", "test_acc": round(central_acc, 4),
             "seconds": round(time.perf_counter() - t, 1)}]
    algs = [("fedavg", 0.1), *(("fedprox", m) for m in s["mu"])]
    for part, extra in (("iid", {}), ("dirichlet", {"alpha": 0.5})):
        for alg, mu in algs:
            acc, sec = fl(algorithm=alg, mu=mu, partition=part, **extra)
            rows.append({"partition": part, "algorithm": alg, "mu": mu if alg == "fedprox" else "",
                         "test_acc": round(acc, 4), "seconds": round(sec, 1)})
            print(rows[-1], flush=True)
    acc, sec = fl(aggregate=secure_weighted_average, partition="dirichlet", alpha=0.5)
    rows.append({"partition": "dirichlet", "algorithm": "fedavg + pairwise masks", "mu": "",
                 "test_acc": round(acc, 4), "seconds": round(sec, 1)})

    label_rows = []
    settings_1label = [(0.0, alg, mu) for alg, mu in [("fedavg", 0.1), *(("fedprox", m) for m in s["label_mu"])]] + \
        [(s["stragglers"], alg, mu) for alg, mu in [("fedavg", 0.1), *(("fedprox", m) for m in s["straggler_mu"])]]
    for stragglers, alg, mu in settings_1label:
        accs, secs = [], []
        for seed in s["seeds"]:
            acc, sec = fl(seed, algorithm=alg, mu=mu, partition="labels", labels_per_client=1, stragglers=stragglers)
            accs.append(acc)
            secs.append(sec)
        label_rows.append({"partition": "1 label per client", "stragglers": stragglers, "algorithm": alg,
                           "mu": mu if alg == "fedprox" else "",
                           "test_acc_mean": round(statistics.mean(accs), 4),
                           "test_acc_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
                           "per_seed": [round(a, 4) for a in accs], "seconds_per_run": round(statistics.mean(secs), 1)})
        print(label_rows[-1], flush=True)

    drift_rows = []
    if s["drift"]:
        d = {k: v for k, v in s["drift"].items() if k != "mu"}
        for alg, mu in [("fedavg", 0.1), *(("fedprox", m) for m in s["drift"]["mu"])]:
            accs, secs = [], []
            for seed in s["seeds"]:
                acc, sec = fl(seed, algorithm=alg, mu=mu, partition="labels", labels_per_client=1, **d)
                accs.append(acc)
                secs.append(sec)
            drift_rows.append({"partition": "1 label per client", "setting": "heavy local drift (E=10, batch 8)",
                               "algorithm": alg, "mu": mu if alg == "fedprox" else "",
                               "test_acc_mean": round(statistics.mean(accs), 4),
                               "test_acc_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
                               "per_seed": [round(a, 4) for a in accs],
                               "seconds_per_run": round(statistics.mean(secs), 1)})
            print(drift_rows[-1], flush=True)

    def best(stragglers: float, alg: str) -> dict:
        return max((r for r in label_rows if r["stragglers"] == stragglers and r["algorithm"] == alg),
                   key=lambda r: r["test_acc_mean"])

    acc_of = {(r["partition"], r["algorithm"], r["mu"]): r["test_acc"] for r in rows}
    checks = {"iid_gap_points": round(100 * (central_acc - acc_of[("iid", "fedavg", "")]), 2),
              "dirichlet_gap_points": round(100 * (central_acc - acc_of[("dirichlet", "fedavg", "")]), 2)}
    for st in (0.0, s["stragglers"]):
        fa, fp = best(st, "fedavg"), best(st, "fedprox")
        checks[f"labels_stragglers_{st}"] = {
            "fedavg_mean": fa["test_acc_mean"], "best_fedprox_mu": fp["mu"], "best_fedprox_mean": fp["test_acc_mean"],
            "fedprox_ahead_on_mean": fp["test_acc_mean"] > fa["test_acc_mean"],
            "fedprox_ahead_on_every_seed": all(b > a for a, b in zip(fa["per_seed"], fp["per_seed"]))}
    if drift_rows:
        fa = drift_rows[0]
        fp = max(drift_rows[1:], key=lambda r: r["test_acc_mean"])
        checks["labels_heavy_drift"] = {
            "fedavg_mean": fa["test_acc_mean"], "best_fedprox_mu": fp["mu"], "best_fedprox_mean": fp["test_acc_mean"],
            "fedprox_ahead_on_mean": fp["test_acc_mean"] > fa["test_acc_mean"],
            "fedprox_ahead_on_every_seed": all(b > a for a, b in zip(fa["per_seed"], fp["per_seed"]))}
    name = "privacy_fl_quick" if quick else "privacy_fl"
    info = {**meta(f"python benchmarks/privacy_fl.py{' --quick' if quick else ''}"), "settings": s, "rows": rows,
            "label_rows": label_rows, "drift_rows": drift_rows, "checks": checks}
    shown = [{**r, "per_seed": " / ".join(str(a) for a in r["per_seed"])} for r in label_rows]
    drift_md = []
    if drift_rows:
        d = s["drift"]
        drift_md = [f"1 label per client, heavy local drift (niid_bench's regime), no stragglers: MLP width {d['width']}, "
                    f"{d['rounds']} rounds x {d['local_epochs']} local epochs of SGD batch {d['batch_size']}, lr {d['lr']}, "
                    f"momentum {d['momentum']} (~170 local steps per client per round), seeds {s['seeds']}, μ over "
                    f"{d['mu']}.", "",
                    *table([{**r, "per_seed": " / ".join(str(a) for a in r["per_seed"])} for r in drift_rows]), ""]
    body = [f"Digits, {s['clients']} clients (all take part each round), MLP width {s['width']}, {s['rounds']} rounds x "
            f"{s['local_epochs']} local epochs, SGD lr {s['lr']}, batch {s['batch_size']}; centralised: "
            f"{s['central_epochs']} epochs of the same SGD on all the data. The 2-core machine was shared with other "
            f"jobs (seconds are noisy).", "", *table(rows), "",
            f"1 label per client, seeds {s['seeds']} (partition, client order, stragglers, initial weights), test "
            f"accuracy after the last round, mean ± std over seeds. stragglers = {s['stragglers']}: that fraction of "
            f"each round's clients finishes only a uniform 1..E-1 of its E epochs; FedAvg drops them, FedProx "
            f"aggregates their partial work (Li et al. 2020, Sec. 5.1).", "", *table(shown), "", *drift_md,
            f"Checks: {checks}"]
    write(name, info, body, out)
    return info


if __name__ == "__main__":
    raise SystemExit(main(run, __doc__.splitlines()[0], "8 rounds of 2 local epochs, one seed"))
