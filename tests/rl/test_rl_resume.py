"""RL run folders are resumable and protected (issue 19, item 1): a run SIGKILLed mid-way and re-run with
the same command ends with a policy bit-identical (torch.equal on every tensor) to an uninterrupted
run, for PPO and SAC; metrics.jsonl holds one history; a changed config is refused naming the field."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from frontierkit.config import load_config
from frontierkit.track import make_tracker, read_metrics, truncate_metrics

CLI = [sys.executable, "-c", "import sys; from frontierkit.cli import main; sys.exit(main())"]
PPO = ["rl", "train", "ppo", "--env", "CartPole-v1", "--ppo.total_steps", "3072", "--ppo.n_envs", "4",
       "--ppo.batch_size", "64", "--ppo.n_epochs", "2", "--ckpt.every", "256", "--eval.every", "0",
       "--eval.episodes", "1", "--tracker", "none", "--quiet"]
SAC = ["rl", "train", "sac", "--env", "Pendulum-v1", "--sac.total_steps", "330", "--sac.learning_starts", "50",
       "--sac.batch_size", "16", "--sac.hidden", "[16]", "--ckpt.every", "70", "--eval.every", "0",
       "--eval.episodes", "1", "--tracker", "none", "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}


def _kill_after_first_checkpoint(args: list[str], out: Path) -> None:
    """Start the command, SIGKILL it as soon as its first checkpoint is committed (it must still be running)."""
    proc = subprocess.Popen(CLI + args + ["--out", str(out)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "latest").exists():
        assert proc.poll() is None, f"run ended before its first checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive and proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "model").exists()


def _reference(module: str, cls: str, args: list[str], out: Path) -> None:
    """The same run uninterrupted, through the Python API (same config as the CLI builds)."""
    import importlib
    mod = importlib.import_module(module)
    overrides = args[3:args.index("--tracker")]
    env_flag = overrides.index("--env")
    overrides[env_flag:env_flag + 2] = ["--env.id", overrides[env_flag + 1]]
    torch_threads = torch.get_num_threads()
    try:
        tracker = make_tracker("none", out)  # metrics.jsonl only, as the CLI writes
        mod.train(load_config(getattr(mod, cls), None, overrides), out=out, tracker=tracker)
        tracker.close()
    finally:
        torch.set_num_threads(torch_threads)


def _assert_same_policy(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _resume_case(tmp_path: Path, module: str, cls: str, args: list[str]) -> None:
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    _kill_after_first_checkpoint(args, killed)
    done = subprocess.run(CLI + args + ["--out", str(killed)], env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _reference(module, cls, args, ref)
    _assert_same_policy(ref, killed)
    steps = [r["step"] for r in read_metrics(killed)]
    assert steps == [r["step"] for r in read_metrics(ref)]  # one history, no restart at 0
    assert steps == sorted(steps)


@pytest.mark.slow
def test_ppo_sigkill_then_rerun_is_bit_identical(tmp_path):
    """Oracle: the uninterrupted run; tolerance: exact (torch.equal on every weight, observation normaliser incl.)."""
    _resume_case(tmp_path, "frontierkit.rl.ppo", "PPORunConfig", PPO)


@pytest.mark.slow
def test_sac_sigkill_then_rerun_is_bit_identical(tmp_path):
    """Oracle: the uninterrupted run; tolerance: exact. Checkpoints every 70 steps land mid-episode, so the
    env is restored by replaying the episode's actions; replay buffer, critics, α and Adam states resume."""
    _resume_case(tmp_path, "frontierkit.rl.sac", "SACRunConfig", SAC)


def test_changed_config_is_refused_naming_the_field(tmp_path):
    """A re-run with another --ppo.lr (or another algorithm) is refused before the folder is touched; a
    re-run changing only the checkpoint cadence continues the finished run (a no-op)."""
    import argparse

    from frontierkit.errors import CheckpointError
    from frontierkit.rl.commands import cmd_train, register
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), "rl", "rl")

    def run(*argv: str) -> int:
        args, rest = parser.parse_known_args(["rl", "train", *argv, "--out", str(tmp_path), "--tracker", "none",
                                              "--quiet"])
        args.overrides = rest
        return cmd_train(args)

    ppo = ["ppo", "--env", "CartPole-v1", "--ppo.total_steps", "256", "--ppo.n_envs", "2", "--ppo.batch_size", "64",
           "--ppo.n_epochs", "1", "--eval.episodes", "1"]
    threads = torch.get_num_threads()
    try:
        assert run(*ppo) == 0
        before, rows = (tmp_path / "model" / "model.safetensors").read_bytes(), read_metrics(tmp_path)
        config = (tmp_path / "run_config.json").read_text()
        with pytest.raises(CheckpointError, match=r"ppo\.lr=0\.001, but this run sets ppo\.lr=0\.0003"):
            run(*ppo, "--ppo.lr", "3e-4")
        with pytest.raises(CheckpointError, match="already holds a ppo run"):
            run("sac", "--env", "Pendulum-v1")
        assert (tmp_path / "run_config.json").read_text() == config
        assert run(*ppo, "--ckpt.every", "128") == 0
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == before
    assert read_metrics(tmp_path) == rows


def test_truncate_metrics_drops_rows_after_the_checkpoint_and_half_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a": 3}\n{"st')
    with open(tmp_path / "metrics.jsonl", "a") as f:  # a tracker's append handle stays valid
        truncate_metrics(tmp_path, 2)
        f.write('{"step": 3, "a": 4}\n')
    assert [(r["step"], r["a"]) for r in read_metrics(tmp_path)] == [(1, 1), (2, 2), (3, 4)]


def test_recorded_env_restores_mid_episode_by_replay():
    """Oracle: the same env stepped on without interruption; tolerance: exact observations and rewards."""
    from frontierkit.rl.envs import Recorded, make_env
    rng = np.random.default_rng(0)
    actions = rng.uniform(-2, 2, size=(260, 1)).astype(np.float32)
    a = Recorded(make_env("Pendulum-v1", seed=3))
    a.reset(seed=3)
    for t in range(230):  # one reset without a seed at 200 (time limit)
        *_, term, trunc, _ = a.step(actions[t])
        if term or trunc:
            a.reset()
    state = a.state()
    b = Recorded(make_env("Pendulum-v1", seed=99))
    b.restore(state)
    for t in range(230, 260):
        oa, ra, *_ = a.step(actions[t])
        ob, rb, *_ = b.step(actions[t])
        assert np.array_equal(oa, ob) and ra == rb
    assert np.array_equal(a.action_space.sample(), b.action_space.sample())
