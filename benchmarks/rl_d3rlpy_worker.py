"""Runs one d3rlpy CQL/IQL training inside .cache/rl/d3rlpy-venv (gymnasium 1.0.0) and prints JSON.

Called by benchmarks/rl_offline_d3rlpy.py; never imports frontierkit. Hyper-parameters mirror ours.
"""
import json
import sys
import time

import numpy as np


def main(path: str, algo: str, steps: int, seed: int, hidden: int, n_samples: int, episodes: int) -> None:
    import d3rlpy
    import gymnasium as gym
    import torch
    torch.set_num_threads(1)
    d3rlpy.seed(seed)
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["metadata"]))
    dataset = d3rlpy.dataset.MDPDataset(observations=data["observations"], actions=data["actions"],
                                        rewards=data["rewards"], terminals=data["terminals"].astype(np.float32),
                                        timeouts=data["timeouts"].astype(np.float32))
    enc = d3rlpy.models.VectorEncoderFactory(hidden_units=[hidden, hidden])
    scaler = d3rlpy.preprocessing.MinMaxActionScaler(minimum=np.array(meta["low"], dtype=np.float32),
                                                     maximum=np.array(meta["high"], dtype=np.float32))
    if algo == "cql":
        cfg = d3rlpy.algos.CQLConfig(actor_learning_rate=1e-4, critic_learning_rate=3e-4, temp_learning_rate=1e-4,
                                     alpha_learning_rate=0.0, batch_size=256, gamma=0.99, tau=0.005, n_critics=2,
                                     initial_temperature=1.0, conservative_weight=5.0, n_action_samples=n_samples,
                                     actor_encoder_factory=enc, critic_encoder_factory=enc, action_scaler=scaler)
    else:
        cfg = d3rlpy.algos.IQLConfig(actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, gamma=0.99,
                                     tau=0.005, n_critics=2, expectile=0.7, weight_temp=3.0, max_weight=100.0,
                                     actor_encoder_factory=enc, critic_encoder_factory=enc, value_encoder_factory=enc,
                                     action_scaler=scaler)
    model = cfg.create(device="cpu:0")
    model.build_with_dataset(dataset)
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
              logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=steps + 1)
    sps, cpu_sps = steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)
    env = gym.make(meta["env_id"])
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        done, total = False, 0.0
        while not done:
            obs, r, te, tr, _ = env.step(model.predict(np.asarray(obs, dtype=np.float32)[None])[0])
            total += float(r)
            done = te or tr
        returns.append(total)
    print(json.dumps({"final_return": float(np.mean(returns)), "final_std": float(np.std(returns)),
                      "steps_per_s": sps, "steps_per_cpu_s": cpu_sps, "d3rlpy": d3rlpy.__version__}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]))
