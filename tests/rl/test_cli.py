"""``frontier rl``: train/eval round trip and one-line errors for bad env ids, SAC on a discrete env,
malformed datasets and mismatched checkpoints."""
import json

import pytest

from frontierkit.cli import main


def test_train_ppo_then_eval_json(tmp_path, capsys):
    out = tmp_path / "ppo"
    assert main(["rl", "train", "ppo", "--env", "CartPole-v1", "--out", str(out), "--tracker", "jsonl", "--quiet",
                 "--ppo.total_steps", "512", "--eval.episodes", "1"]) == 0
    assert (out / "model" / "config.json").is_file() and (out / "model" / "model.safetensors").is_file()
    assert (out / "metrics.jsonl").read_text().count("approx_kl") >= 1
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["model"]["algo"] == "ppo" and cfg["run"]["ppo"]["total_steps"] == 512
    capsys.readouterr()
    assert main(["rl", "eval", "--model", str(out), "--episodes", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["episodes"] == 3 and len(res["returns"]) == 3 and res["env_id"] == "CartPole-v1"


@pytest.mark.parametrize("argv, message", [
    (["rl", "train", "ppo", "--env", "CartPol-v1"], "did you mean CartPole-v1"),
    (["rl", "train", "sac", "--env", "CartPole-v1"], "discrete action space"),
    (["rl", "train", "sac", "--dataset", "x.npz"], "online"),
    (["rl", "train", "cql", "--env", "Pendulum-v1"], "offline"),
    (["rl", "train", "iql"], "needs a dataset"),
    (["rl", "train", "iql", "--dataset", "missing.npz"], "does not exist"),
    (["rl", "train", "ppo", "--ppo.gamma", "1.5"], "ppo.gamma"),
    (["rl", "eval", "--model", "nowhere"], "does not exist"),
])
def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.npz").write_bytes(b"")          # exists, so sac's refusal (online) is what is tested
    assert main(argv + (["--out", str(tmp_path / "r"), "--tracker", "none"] if argv[1] == "train" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and err.count("\n") == 0


def test_malformed_dataset_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    assert main(["rl", "train", "cql", "--dataset", str(bad), "--out", str(tmp_path / "r"), "--tracker", "none"]) == 2
    assert "not a .npz" in capsys.readouterr().err


def test_eval_on_env_with_other_spaces_is_refused(tmp_path, capsys):
    out = tmp_path / "ppo"
    main(["rl", "train", "ppo", "--env", "CartPole-v1", "--out", str(out), "--tracker", "none", "--quiet",
          "--ppo.total_steps", "256", "--eval.episodes", "1"])
    capsys.readouterr()
    assert main(["rl", "eval", "--model", str(out), "--env", "Acrobot-v1"]) == 2
    assert "trained on CartPole-v1" in capsys.readouterr().err


def test_every_rl_recipe_loads_into_its_config():
    from pathlib import Path

    from frontierkit.config import load_config
    from frontierkit.rl.commands import ALGOS, _config_cls
    recipes = sorted((Path(__file__).resolve().parents[2] / "configs" / "rl").glob("*.toml"))
    assert recipes
    for path in recipes:
        algo = path.stem.split("_")[0]
        assert algo in ALGOS, path
        load_config(_config_cls(algo), path)
