"""FedAvg / FedProx over Flower (flwr): one OS process per client, gRPC over localhost, and the same
global model as the in-process simulator. Oracle: frontierkit's own simulator (federated_train with
the same partition, seeds and aggregation); tolerance: exact (atol 0) — the clients run the same
single-threaded local updates on the same weights, the server the same aggregation in the same order.

Flower needs its own environment (flwr pins older protobuf/fastapi): `make flower-venv` builds
.venv-flwr, and `make test` builds it first, so in CI this test always runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
FLWR = Path(os.environ.get("FRONTIERKIT_FLWR_VENV", ROOT / ".venv-flwr")) / "bin" / "frontier"


def _flower_cli():
    if not FLWR.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{FLWR} is missing: `make test` builds it with `make flower-venv`")
        pytest.skip(f"no Flower environment at {FLWR}: run `make flower-venv`")
    return FLWR


def _simulate(overrides: dict):
    """The in-process simulator's global model for the same run config (single-threaded, as the clients)."""
    from frontierkit.config import from_dict
    from frontierkit.privacy.federated import FLRunConfig, federated_train
    from frontierkit.privacy.secagg import secure_weighted_average
    from frontierkit.vision import VisionDataConfig, build_model, load_data
    cfg = from_dict(FLRunConfig, overrides)
    x, y = load_data(VisionDataConfig(), "train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.fl.seed)
        model = build_model(cfg.model, width=cfg.width)
        model, _ = federated_train(model, x, y, cfg.fl,
                                   aggregate=secure_weighted_average if cfg.aggregation == "masked" else None)
    finally:
        torch.set_num_threads(threads)
    return model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm,aggregation,fraction", [("fedprox", "plain", 1.0), ("fedavg", "masked", 0.75)],
                         ids=["fedprox-plain", "fedavg-masked-3of4"])
def test_flower_processes_give_the_simulators_global_model(tmp_path, algorithm, aggregation, fraction):
    """4 client processes + the server over Flower's gRPC on localhost, 2 rounds on 1-label-per-client
    digits: the saved global model equals the simulator's exactly; with masked aggregation the clients
    mask n_k·w_k themselves and the server unmasks only the sum (and a round with 3 of 4 clients)."""
    cli = _flower_cli()
    overrides = {"fl": {"algorithm": algorithm, "clients": 4, "rounds": 2, "partition": "labels",
                        "labels_per_client": 3, "fraction": fraction, "local_epochs": 1},
                 "aggregation": aggregation, "transport": "flower"}
    args = [f"--fl.algorithm={algorithm}", "--fl.clients=4", "--fl.rounds=2", "--fl.partition=labels",
            "--fl.labels_per_client=3", f"--fl.fraction={fraction}", f"--aggregation={aggregation}",
            "--transport=flower"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([str(cli), "privacy", "federated", *args, "--out", str(tmp_path / "run"),
                        "--tracker", "none", "--quiet"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["transport"] == "flower" and summary["rounds"] == 2
    from safetensors.torch import load_file
    over_flower = load_file(str(Path(summary["model_dir"]) / "model.safetensors"))
    simulated = _simulate(overrides)
    assert set(over_flower) == set(simulated)
    for name, t in simulated.items():
        torch.testing.assert_close(over_flower[name], t, atol=0, rtol=0)
    logs = sorted((tmp_path / "run" / "flower-logs").glob("client-*.log"))
    assert len(logs) == 4                                         # one process per client


def test_flower_transport_refuses_ckks_and_names_the_environment_when_flwr_is_missing():
    """One-line errors: CKKS aggregation is simulator-only; without flwr the message names `make flower-venv`."""
    from frontierkit.config import ConfigError, from_dict
    from frontierkit.errors import MissingExtraError
    from frontierkit.privacy.federated import FLRunConfig
    with pytest.raises(ConfigError, match="aggregation"):
        from_dict(FLRunConfig, {"aggregation": "ckks", "transport": "flower"})
    try:
        import flwr  # noqa: F401
    except ImportError:
        from frontierkit.privacy.flower import make_client
        with pytest.raises(MissingExtraError, match="make flower-venv"):
            make_client(from_dict(FLRunConfig, {"transport": "flower"}), 0)
