"""``frontier privacy``: the accountant both ways, one-line user errors, a budget-limited dp-train, a masked
federated run, all through the real CLI entry point."""
import json

from frontierkit.cli import main
from frontierkit.privacy import noise_multiplier_for, rdp_epsilon


def _json_line(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_accountant_command_gives_epsilon_and_its_inverse(capsys):
    """The CLI prints rdp_epsilon / noise_multiplier_for's values exactly."""
    assert main(["privacy", "accountant", "--sigma", "1.1", "--sample-rate", "0.01", "--steps", "1000"]) == 0
    assert _json_line(capsys)["epsilon"] == rdp_epsilon(1.1, 0.01, 1000, 1e-5)
    assert main(["privacy", "accountant", "--epsilon", "2", "--sample-rate", "0.01", "--steps", "500"]) == 0
    assert _json_line(capsys)["noise_multiplier"] == noise_multiplier_for(2.0, 1e-5, 0.01, 500)


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    """Both or neither of --sigma/--epsilon, a bad sample rate, a BatchNorm model: one line, no traceback."""
    for argv in (["privacy", "accountant", "--sample-rate", "0.01", "--steps", "5"],
                 ["privacy", "accountant", "--sigma", "1", "--sample-rate", "2", "--steps", "5"],
                 ["privacy", "dp-train", "--model", "resnet", "--train.steps", "1", "--tracker", "none", "--quiet",
                  "--out", str(tmp_path / "bn")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err, err
    assert "GroupNorm" in err


def test_dp_train_command_stops_at_the_budget(tmp_path, capsys):
    """--dp.noise_multiplier 1 with a budget 5 steps spend: the run asked for 30 steps takes 5 and says so."""
    from frontierkit.data.digits import load_digits
    q = 128 / len(load_digits("train")[1])
    budget = rdp_epsilon(1.0, q, 5, 1e-5) + 1e-9
    assert main(["privacy", "dp-train", "--model", "mlp", "--train.steps", "30", "--train.batch_size", "128",
                 "--dp.noise_multiplier", "1", "--dp.epsilon", str(budget), "--out", str(tmp_path / "r"),
                 "--tracker", "none", "--quiet"]) == 0
    rec = _json_line(capsys)
    assert rec["steps"] == 5 and rec["stopped_by_budget"] and rec["epsilon"] <= budget


def test_federated_command_with_masked_aggregation_writes_its_history(tmp_path, capsys):
    """`frontier privacy fl` runs FedAvg with pairwise-masked aggregation and records accuracy per round."""
    assert main(["privacy", "fl", "--fl.rounds", "2", "--aggregation", "masked", "--out", str(tmp_path / "fl"),
                 "--tracker", "none", "--quiet"]) == 0
    rec = _json_line(capsys)
    history = json.loads((tmp_path / "fl" / "federated.json").read_text())
    assert rec["aggregation"] == "masked" and len(history) == 2 and history[-1]["test_acc"] == rec["test_acc"]
