"""The README's CLI blocks run top to bottom in a fresh folder (issue 19): every ``frontier`` line of every
```bash block is run, in order, as written plus overrides that only shorten it (fewer steps, rows,
rounds, episodes), through ``frontierkit.cli.main`` in an empty working directory holding only
``configs/``. A line that cannot run here is listed in SKIPPED with its reason; a README line in neither
list fails the test, so nothing is skipped silently.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# command prefix -> overrides appended to shorten the run (never to change what it does)
SHORT: dict[str, list[str]] = {
    "frontier train digits --train.lr": ["--train.steps", "3", "--train.warmup_steps", "0"],
    "frontier llm train": ["--train.steps", "2", "--train.warmup_steps", "0", "--data.eval_batches", "1"],
    "frontier vision train": ["--train.steps", "20", "--train.warmup_steps", "0"],
    "frontier multimodal train-clip": ["--train.steps", "2", "--train.warmup_steps", "0", "--data.n", "300"],
    "frontier multimodal train-llava": ["--pretrain.steps", "2", "--pretrain.warmup_steps", "0", "--stage1.steps",
                                        "2", "--stage1.warmup_steps", "0", "--stage2.steps", "2",
                                        "--stage2.warmup_steps", "0", "--data.n", "300", "--eval_n", "20"],
    "frontier compress quantize --model runs/llm-tiny": ["--calib-batches", "1"],
    "frontier robust attack": ["--n", "16", "--steps", "3"],
    "frontier robust train": ["--train.steps", "3", "--train.warmup_steps", "0"],
    "frontier robust eval": ["--n", "16"],
    "frontier privacy dp-train": ["--train.steps", "2"],
    "frontier privacy federated": ["--fl.rounds", "1"],
    "frontier rl train ppo": ["--ppo.total_steps", "512", "--eval.episodes", "1"],
    "frontier rl collect": ["--train-steps", "300", "--transitions", "400"],
    "frontier rl train iql": ["--iql.steps", "20", "--eval.episodes", "1"],
    "frontier rl eval": ["--episodes", "1"],
    "frontier diffusion train": ["--train.steps", "2", "--train.warmup_steps", "0"],
    "frontier diffusion sample": ["--steps", "2"],
    "frontier agent eval": ["--limit", "3"],
    "frontier science data burgers": ["--n", "40"],
    "frontier science train fno": ["--data.n_train", "32", "--data.n_test", "8", "--train.steps", "2"],
    "frontier science train schnet": ["--data.n_train", "8", "--data.n_test", "4", "--train.steps", "2",
                                      "--train.batch_size", "4"],
    "frontier compress prune --model runs/llm-tiny --heads": ["--calib-batches", "1"],
    "frontier privacy dp-lm": ["--train.steps", "1", "--train.batch_size", "8", "--data.windows", "64",
                               "--data.val_windows", "4"],
}
SKIPPED: dict[str, str] = {
    "make demo": "installs extras and runs the full tour (minutes); tests/test_tour*.py cover the tour",
    "make test": "runs the whole test suite this test belongs to",
    "frontier train text --config my.toml": "illustrative: my.toml stands for the user's own recipe",
    "frontier tour --quick train llm": "the tour has its own tests; its sections exceed this test's budget",
    "torchrun --nproc-per-node 2 -m frontierkit.cli llm train --config configs/llm/tiny.toml --strategy fsdp":
        "2-rank torchrun: tests/train/test_distributed.py (fsdp parity) and "
        "tests/test_promises_runs.py::test_torchrun_deepspeed_starts_from_init_from run it",
    "frontier serve --model": "a server runs until stopped: tests/serve/test_serve_api.py starts `python -m "
                              "frontierkit.serve` on a kit folder and drives it with the openai client",
    "frontier agent run --base-url": "needs the server of the line above running: tests/agents/"
                                     "test_agents_serve_integration.py::test_agent_against_real_frontier_serve",
    "make flower-venv": "builds Flower's own venv (make test builds it too); tests/privacy/test_privacy_flower.py "
                        "runs the federated command over Flower",
    "DS_ACCELERATOR=cpu torchrun": "2-rank DeepSpeed: tests/test_promises_runs.py::"
                                   "test_torchrun_deepspeed_starts_from_init_from runs this line's flags",
}


def readme_commands() -> list[str]:
    """Command lines of README's ```bash blocks (continuations joined, comments dropped)."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(" ".join(line.split()))
    return lines


def _match(table: dict[str, object], line: str) -> str | None:
    return next((k for k in sorted(table, key=len, reverse=True) if line.startswith(k)), None)


def test_every_readme_command_is_run_or_listed_with_a_reason():
    unknown = [line for line in readme_commands()
               if _match(SKIPPED, line) is None and not line.startswith("frontier ")]
    assert not unknown, f"README lines neither run nor listed in SKIPPED: {unknown}"
    stale = [k for k in SKIPPED if not any(line.startswith(k) for line in readme_commands())]
    assert not stale, f"SKIPPED names lines README no longer has: {stale}"


@pytest.mark.slow
def test_readme_cli_blocks_run_top_to_bottom(tmp_path, monkeypatch, capsys):
    from frontierkit.cli import main
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    threads = torch.get_num_threads()
    ran = []
    try:
        for line in readme_commands():
            if _match(SKIPPED, line) is not None:
                continue
            argv = shlex.split(line)[1:] + SHORT.get(_match(SHORT, line) or "", [])
            if argv[-1:] != ["--help"] and "--print-config" not in argv and argv[:1] != ["--help"]:
                argv = argv + ["--quiet"] if _takes_quiet(argv) else argv
            t0 = time.perf_counter()
            code = main(argv)
            out = capsys.readouterr()
            print(f"[readme] {time.perf_counter() - t0:6.1f} s  rc={code}  {line}", file=sys.__stderr__, flush=True)
            assert code == 0, f"`{line}` exited {code}: {out.err[-1500:]}"
            ran.append(line)
    finally:
        torch.set_num_threads(threads)
    assert len(ran) >= 30
    assert (tmp_path / "runs" / "rl-iql" / "model").is_dir() and (tmp_path / "runs" / "llm-int4").is_dir()


def _takes_quiet(argv: list[str]) -> bool:
    """Run commands (those writing a run folder) accept --quiet; it only hides progress bars."""
    return "train" in argv[:2] or argv[:2] in (["multimodal", "train-clip"], ["multimodal", "train-llava"],
                                               ["privacy", "dp-train"], ["privacy", "federated"])
