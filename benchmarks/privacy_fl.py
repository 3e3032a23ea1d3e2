"""Federated learning on digits, 10 clients: FedAvg vs FedProx over IID, Dirichlet(0.5) and 1-label-per-client
partitions, against centralised training (the same SGD on all the data), plus the secure-aggregation cost.

    .venv/bin/python benchmarks/privacy_fl.py [--quick] [--out DIR]

Issue 12's targets: IID within 1 point of centralised, Dirichlet(0.5) within 2, and on 1 label per client
FedProx ahead of FedAvg (the ordering of Flower's niid_bench). --quick: 8 rounds of 1 local epoch (far from converged).
Writes <out>/privacy_fl(_quick).json and .md.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from bench_common import RESULTS, meta, table, write
from privacy_common import main


def settings(quick: bool) -> dict:
    return {"rounds": 8 if quick else 100, "local_epochs": 1 if quick else 2, "central_epochs": 8 if quick else 50,
            "clients": 10, "width": 16, "lr": 0.1, "batch_size": 16, "mu": [0.1, 1.0]}


def run(quick: bool, out: Path = RESULTS) -> dict:
    from frontierkit.privacy.federated import FLConfig, federated_train, local_update
    from frontierkit.privacy.secagg import secure_weighted_average
    from frontierkit.vision import VisionDataConfig, accuracy, build_model, load_data
    torch.set_num_threads(1)
    s = settings(quick)
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")

    def model():
        torch.manual_seed(0)
        return build_model("mlp", width=s["width"])

    central = model()
    t = time.perf_counter()
    local_update(central, x, y, epochs=s["central_epochs"], batch_size=s["batch_size"], lr=s["lr"])
    rows = [{"partition": "centralised", "algorithm": "sgd", "mu": "", "test_acc": round(accuracy(central, xt, yt), 4),
             "seconds": round(time.perf_counter() - t, 1)}]
    for part, extra in (("iid", {}), ("dirichlet", {"alpha": 0.5}), ("labels", {"labels_per_client": 1})):
        for alg, mu in (("fedavg", 0.0), *(("fedprox", m) for m in s["mu"])):
            cfg = FLConfig(algorithm=alg, mu=mu or 0.1, partition=part, rounds=s["rounds"], clients=s["clients"],
                           local_epochs=s["local_epochs"], lr=s["lr"], batch_size=s["batch_size"], **extra)
            t = time.perf_counter()
            _, hist = federated_train(model(), x, y, cfg, evaluate=lambda m: accuracy(m, xt, yt))
            rows.append({"partition": part, "algorithm": alg, "mu": mu if alg == "fedprox" else "",
                         "test_acc": round(hist[-1]["test_acc"], 4), "seconds": round(time.perf_counter() - t, 1)})
            print(rows[-1], flush=True)
    cfg = FLConfig(partition="dirichlet", rounds=s["rounds"], local_epochs=s["local_epochs"], lr=s["lr"])
    t = time.perf_counter()
    _, hist = federated_train(model(), x, y, cfg, aggregate=secure_weighted_average,
                              evaluate=lambda m: accuracy(m, xt, yt))
    rows.append({"partition": "dirichlet", "algorithm": "fedavg + pairwise masks", "mu": "",
                 "test_acc": round(hist[-1]["test_acc"], 4), "seconds": round(time.perf_counter() - t, 1)})
    name = "privacy_fl_quick" if quick else "privacy_fl"
    info = {**meta(f"python benchmarks/privacy_fl.py{' --quick' if quick else ''}"), "settings": s, "rows": rows}
    body = [f"Digits, {s['clients']} clients, MLP width {s['width']}, {s['rounds']} rounds x {s['local_epochs']} "
            f"local epoch(s), SGD lr {s['lr']}, batch {s['batch_size']}; centralised: {s['central_epochs']} epochs of "
            f"the same SGD on all the data.",
            "", *table(rows)]
    write(name, info, body, out)
    return info


if __name__ == "__main__":
    raise SystemExit(main(run, __doc__.splitlines()[0], "8 rounds of 1 local epoch"))
