"""`frontier science ...`: bad input is one line, not a traceback; eval reads a saved model through the registry."""
from __future__ import annotations

import json

import torch

from frontierkit.cli import main


def test_science_train_fno_refuses_a_bad_resolution(capsys):
    """--data.s outside the solver's grids -> a one-line ConfigError naming the field."""
    assert main(["science", "train", "fno", "--data.s", "100", "--print-config"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.s=100" in err[0]


def test_science_train_fno_darcy_needs_2d_modes(capsys):
    assert main(["science", "train", "fno", "--data.problem", "darcy", "--print-config"]) != 0
    assert "--model.n_modes [12,12]" in capsys.readouterr().err


def test_science_eval_fno_reads_the_registry(tmp_path, monkeypatch, capsys):
    """A saved FNO with its run config evaluates on its data at the training and finer resolutions."""
    from frontierkit import models
    from frontierkit.science import FNO
    monkeypatch.setenv("FRONTIERKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("frontierkit.science.train.SOLVE_RES", {"burgers": 64, "darcy": 85})
    torch.manual_seed(0)
    model = FNO(n_modes=(8,), hidden_channels=4, n_layers=1)
    run = {"data": {"problem": "burgers", "n_train": 4, "n_test": 2, "s": 64}}
    models.save(model, tmp_path / "m", run=run)
    assert main(["science", "eval", "fno", "--model", str(tmp_path / "m")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) == {"rel_l2@64"} and out["rel_l2@64"] > 0


def test_science_train_schnet_then_eval_through_the_registry(tmp_path, monkeypatch, capsys):
    """`train schnet` fits on MMFF94 conformers and reports held-out MAE; `eval schnet` reloads the saved model
    through the registry (kind 'schnet', its run config naming the molecule) and reports the same MAE exactly."""
    monkeypatch.setenv("FRONTIERKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["science", "train", "schnet", "--out", str(out), "--tracker", "none", "--quiet",
                 "--data.n_train", "8", "--data.n_test", "4", "--train.steps", "3", "--train.batch_size", "4",
                 "--model.hidden_channels", "8", "--model.num_filters", "8", "--model.num_interactions", "1",
                 "--model.num_gaussians", "8"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["labels"] == "MMFF94 (not DFT)" and trained["energy_mae"] > 0 and trained["force_mae"] > 0
    assert main(["science", "eval", "schnet", "--model", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["smiles"] == "CCO" and evaluated["n_test"] == 4
    assert evaluated["energy_mae"] == trained["energy_mae"] and evaluated["force_mae"] == trained["force_mae"]


def test_science_data_refuses_a_bad_smiles(tmp_path, monkeypatch, capsys):
    """An unparsable molecule is one line from DataError (exit 2) naming the value, not RDKit's log + traceback."""
    monkeypatch.setenv("FRONTIERKIT_CACHE", str(tmp_path / "cache"))
    assert main(["science", "data", "schnet", "--smiles", "C1CC(", "--n", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "smiles='C1CC('" in err[0]
