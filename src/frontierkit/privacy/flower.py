"""Federated learning over Flower (Beutel et al. 2020, "Flower: A Friendly Federated Learning Framework"):
the clients and the server are separate processes that talk gRPC through ``flwr``; the algorithm is the
simulator's (federated.py), so both give the same global model.

- The client (:class:`KitClient`, a ``flwr`` NumPyClient) holds its partition of digits and runs
  ``local_update`` (FedAvg's ClientUpdate, FedProx's proximal term) from the weights it receives, with
  the simulator's seed for (round, client). With ``aggregation="masked"`` it masks n_k·w_k itself
  (Bonawitz et al. 2017: the server only ever sees masked vectors and their sum).
- The strategy (:class:`KitStrategy`, a ``flwr`` Strategy) samples the simulator's clients each round,
  orders the replies by client id and aggregates them with the simulator's functions (weighted
  average, or the secure sum with the dropped clients' masks removed).

Flower is the transport only; we do not write our own. ``flwr`` pins older protobuf/fastapi than the rest
of the kit, so it lives in its own environment: ``make flower-venv`` (``.venv-flwr``).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, MissingExtraError
from .federated import FLRunConfig, choose_clients, client_seed, local_update, partition, weighted_average
from .secagg import flatten_state, mask_update, secure_sum, unflatten_state


def _flwr():
    try:
        import flwr
    except ImportError:
        raise MissingExtraError("flwr is not installed in this environment; Flower pins older protobuf/fastapi "
                                "than the kit, so it has its own: run `make flower-venv` and use "
                                ".venv-flwr/bin/frontier (or pip install 'frontierkit[flower]' in a fresh venv)") from None
    return flwr


def state_to_arrays(state: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """A state dict as Flower's list of numpy arrays (state-dict order)."""
    return [t.detach().cpu().numpy() for t in state.values()]


def arrays_to_state(arrays: list[np.ndarray], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`state_to_arrays`, shapes and dtypes checked against ``like``."""
    if len(arrays) != len(like):
        raise ConfigError(f"flower: received {len(arrays)} tensors, the model has {len(like)}; "
                          "server and clients must use the same --model and --width")
    return {n: torch.from_numpy(np.array(a, copy=True)).to(t.dtype).view(t.shape) for (n, t), a in zip(like.items(), arrays)}


def round_seed(cfg: FLRunConfig, r: int) -> int:
    """The masks' round seed, as secure_weighted_average derives it."""
    return cfg.fl.seed * 100_003 + r


def client_data(cfg: FLRunConfig, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Client k's partition of the digits training set (the simulator's partition)."""
    from ..vision import VisionDataConfig, load_data
    x, y = load_data(VisionDataConfig(), "train")
    part = partition(y, cfg.fl)[k]
    return x[part], y[part]


def initial_model(cfg: FLRunConfig) -> torch.nn.Module:
    """The global model before round 1 (seeded as the simulator seeds it)."""
    from ..vision import build_model
    torch.manual_seed(cfg.fl.seed)
    return build_model(cfg.model, width=cfg.width)


def make_client(cfg: FLRunConfig, k: int):
    """A Flower client for client id ``k`` of ``cfg`` (its data, model and local update)."""
    flwr = _flwr()
    if not 0 <= k < cfg.fl.clients:
        raise ConfigError(f"--client {k} is invalid: client ids are 0..{cfg.fl.clients - 1} (fl.clients)")

    class KitClient(flwr.client.NumPyClient):
        """ClientUpdate of FedAvg / FedProx on this process's partition."""

        def __init__(self) -> None:
            self.x, self.y = client_data(cfg, k)
            self.model = initial_model(cfg)

        def get_properties(self, config: dict) -> dict:
            return {"client": k}

        def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
            r = int(config["round"])
            self.model.load_state_dict(arrays_to_state(parameters, self.model.state_dict()))
            mu = cfg.fl.mu if cfg.fl.algorithm == "fedprox" else 0.0
            state = local_update(self.model, self.x, self.y, epochs=cfg.fl.local_epochs, batch_size=cfg.fl.batch_size,
                                 lr=cfg.fl.lr, mu=mu, seed=client_seed(cfg.fl, r, k),
                                 momentum=cfg.fl.momentum)
            n = len(self.x)
            if cfg.aggregation == "masked":                 # mask n_k w_k here: the server never sees w_k
                chosen = [int(c) for c in str(config["chosen"]).split(",")]
                u = chosen.index(k)
                y = mask_update(float(n) * flatten_state(state), u, list(range(len(chosen))), round_seed(cfg, r))
                return [y.numpy()], n, {"client": k}
            return state_to_arrays(state), n, {"client": k}

        def evaluate(self, parameters: list[np.ndarray], config: dict) -> tuple[float, int, dict]:
            return 0.0, len(self.x), {}

    return KitClient().to_client()


def make_strategy(cfg: FLRunConfig, model: torch.nn.Module, evaluate=None, history: list | None = None):
    """The server side: the simulator's client sampling and aggregation as a Flower Strategy."""
    flwr = _flwr()
    from flwr.common import FitIns, GetPropertiesIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import Strategy

    like = {n: t.clone() for n, t in model.state_dict().items()}
    rng = np.random.default_rng(cfg.fl.seed)
    history = history if history is not None else []

    class KitStrategy(Strategy):
        """FedAvg (McMahan et al. 2017, Alg. 1) server: sample C·K clients, aggregate their replies."""

        def __init__(self) -> None:
            self.proxies: dict[int, Any] = {}
            self.chosen: list[int] = []

        def initialize_parameters(self, client_manager):
            return ndarrays_to_parameters(state_to_arrays(like))

        def _identify(self, client_manager) -> None:
            client_manager.wait_for(cfg.fl.clients, timeout=600)
            for proxy in client_manager.all().values():
                if proxy not in self.proxies.values():
                    props = proxy.get_properties(GetPropertiesIns({}), timeout=60, group_id=None).properties
                    self.proxies[int(props["client"])] = proxy
            missing = sorted(set(range(cfg.fl.clients)) - set(self.proxies))
            if missing:
                raise ConfigError(f"flower: clients {missing} never connected")

        def configure_fit(self, server_round, parameters, client_manager):
            self._identify(client_manager)
            self.chosen = choose_clients(rng, cfg.fl)
            config = {"round": server_round - 1, "chosen": ",".join(map(str, self.chosen))}
            return [(self.proxies[k], FitIns(parameters, config)) for k in self.chosen]

        def aggregate_fit(self, server_round, results, failures):
            r = server_round - 1
            replies = sorted(((int(res.metrics["client"]), res) for _, res in results), key=lambda t: t[0])
            if not replies:
                raise RuntimeError(f"flower round {server_round}: every client failed ({len(failures)} failures)")
            sizes = [float(res.num_examples) for _, res in replies]
            if cfg.aggregation == "masked":
                masked = {self.chosen.index(k): torch.from_numpy(parameters_to_ndarrays(res.parameters)[0])
                          for k, res in replies}
                total = secure_sum(masked, list(range(len(self.chosen))), round_seed(cfg, r))
                new = unflatten_state(total / sum(sizes), like)
            else:
                if failures:
                    raise RuntimeError(f"flower round {server_round}: {len(failures)} client(s) failed")
                states = [arrays_to_state(parameters_to_ndarrays(res.parameters), like) for _, res in replies]
                new = weighted_average(states, sizes)
            model.load_state_dict(new)
            history.append({"round": server_round, "clients": len(replies),
                            **({"test_acc": evaluate(model)} if evaluate is not None else {})})
            return ndarrays_to_parameters(state_to_arrays(new)), {}

        def configure_evaluate(self, server_round, parameters, client_manager):
            return []

        def aggregate_evaluate(self, server_round, results, failures):
            return None, {}

        def evaluate(self, server_round, parameters):
            return None

    return KitStrategy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(cfg: FLRunConfig, model: torch.nn.Module, address: str, evaluate=None) -> list[dict]:
    """Serve ``cfg.fl.rounds`` rounds on ``address`` (blocks until done); the history of the rounds."""
    flwr = _flwr()
    history: list[dict] = []
    flwr.server.start_server(server_address=address, config=flwr.server.ServerConfig(num_rounds=cfg.fl.rounds),
                             strategy=make_strategy(cfg, model, evaluate, history))
    if len(history) != cfg.fl.rounds:
        raise RuntimeError(f"flower: the server finished {len(history)} of {cfg.fl.rounds} rounds")
    return history


def wait_for_server(address: str, timeout: float = 300.0) -> None:
    """Block until something listens on ``address`` (so the gRPC client never enters its retry backoff)."""
    host, _, port = address.rpartition(":")
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except OSError:
            if time.time() > deadline:
                raise ConfigError(f"flower: no server answered on {address} within {timeout:.0f} s; start "
                                  "`frontier privacy federated --transport flower` first or fix --address") from None
            time.sleep(0.2)


def run_client(cfg: FLRunConfig, k: int, address: str) -> None:
    """Connect client ``k`` to the server at ``address`` and serve its rounds until the server ends."""
    client = make_client(cfg, k)                       # data and model ready before the first message
    wait_for_server(address)
    _flwr().client.start_client(server_address=address, client=client, insecure=True)


def spawn_clients(cfg: FLRunConfig, address: str, log_dir: Path) -> list[subprocess.Popen]:
    """One OS process per client on this machine (``python -m frontierkit.privacy.flower client``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    spec = json.dumps(_config_dict(cfg))
    procs = []
    for k in range(cfg.fl.clients):
        log = open(log_dir / f"client-{k}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "frontierkit.privacy.flower", "client", "--client", str(k),
                                       "--address", address, "--config-json", spec],
                                      stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}))
    return procs


def _config_dict(cfg: FLRunConfig) -> dict:
    from dataclasses import asdict
    return asdict(cfg)


def _config_from(spec: str) -> FLRunConfig:
    from ..config import from_dict
    return from_dict(FLRunConfig, json.loads(spec))


def federated_over_flower(cfg: FLRunConfig, model: torch.nn.Module, log_dir: Path, evaluate=None,
                          address: str | None = None) -> list[dict]:
    """The simulator's run with every client in its own process and Flower in between (localhost)."""
    address = address or f"127.0.0.1:{free_port()}"
    procs = spawn_clients(cfg, address, log_dir)
    try:
        return run_server(cfg, model, address, evaluate)
    finally:
        deadline = time.time() + 30
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv: list[str] | None = None) -> int:
    """``python -m frontierkit.privacy.flower client --client K --address HOST:PORT --config-json JSON``."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m frontierkit.privacy.flower")
    p.add_argument("role", choices=("client",))
    p.add_argument("--client", type=int, required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--config-json", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    run_client(_config_from(a.config_json), a.client, a.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
