"""The model registry (frontierkit.models): every kind that exists round-trips through save/load
with identical outputs (invariant: same weights -> outputs equal exactly, fp32), from a model folder,
a run folder or (llm) a Hugging Face folder; wrong folders and wrong kinds are one clear error."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from frontierkit import models
from frontierkit.errors import CheckpointError
from frontierkit.llm import Transformer, TransformerConfig
from frontierkit.rl.common import build_policy
from frontierkit.vision import MODEL_NAMES, build_model

OBS = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))


def tiny_llm() -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=64, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32,
                                         max_seq_len=32))


def tiny_vision(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, image_size=8, width=16, depth=2, patch_size=2, heads=2)


POLICIES = {
    "actor_critic_discrete": {"algo": "ppo", "policy": "actor_critic", "obs_dim": 3, "act_dim": 2,
                              "discrete": True, "hidden": [8, 8], "norm_obs": True},
    "actor_critic_gaussian": {"algo": "ppo", "policy": "actor_critic", "obs_dim": 3, "act_dim": 1,
                              "discrete": False, "hidden": [8], "norm_obs": False},
    "tanh_gaussian": {"algo": "sac", "policy": "tanh_gaussian", "obs_dim": 3, "act_dim": 1, "discrete": False,
                      "hidden": [8, 8], "low": [-2.0], "high": [2.0]},
    "gaussian": {"algo": "iql", "policy": "gaussian", "obs_dim": 3, "act_dim": 1, "discrete": False,
                 "hidden": [8, 8], "low": [-2.0], "high": [2.0]},
}


def perturb(model: torch.nn.Module) -> torch.nn.Module:
    """Move every saved float tensor off its init so a load that silently kept init would show."""
    with torch.no_grad():
        for t in model.state_dict().values():      # parameters and persistent buffers (not RoPE caches)
            if t.is_floating_point():
                t.add_(0.01 * torch.randn_like(t))
    return model


def test_llm_round_trip_from_model_and_run_folder(tmp_path):
    model = perturb(tiny_llm()).eval()
    models.save(model, tmp_path / "run" / "model")
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    for path in (tmp_path / "run" / "model", tmp_path / "run"):
        loaded = models.open_model(path)
        assert loaded.kind.name == "llm" and isinstance(loaded.model, Transformer)
        assert not loaded.model.training
        torch.testing.assert_close(loaded.model(ids), model(ids), rtol=0, atol=0)
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["kind"] == "llm"


def test_llm_hf_folder_loads_through_the_registry(tmp_path):
    from frontierkit.llm import to_hf
    model = perturb(tiny_llm()).eval()
    to_hf(model, tmp_path / "hf")
    loaded = models.open_model(tmp_path / "hf")
    assert loaded.kind.name == "llm"
    ids = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(loaded.model(ids), model(ids), rtol=1e-5, atol=1e-5)  # HF layout round trip


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_vision_round_trip_every_architecture(tmp_path, name):
    model = perturb(tiny_vision(name)).eval()
    assert models.kind_of(model).name == "vision"
    models.save(model, tmp_path, run={"data": {"name": "digits"}})
    loaded = models.open_model(tmp_path, tags="classifier")
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    assert type(loaded.model) is type(model)
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    xs, ys = loaded.dataset("test")                 # a classifier knows its data
    assert xs.shape[1:] == (1, 8, 8) and len(xs) == len(ys) == 450


@pytest.mark.parametrize("name", list(POLICIES))
def test_rl_policy_round_trip(tmp_path, name):
    config = POLICIES[name]
    torch.manual_seed(0)
    policy = perturb(build_policy(config)).eval()
    assert models.kind_of(policy).name == "rl-policy"
    models.save(policy, tmp_path / "model", config=config)
    loaded = models.open_model(tmp_path, kind="rl-policy")
    torch.testing.assert_close(loaded.model.act(OBS), policy.act(OBS), rtol=0, atol=0)
    assert loaded.config == config


def test_build_makes_a_fresh_model_of_a_kind_by_name():
    """Areas compose without importing each other: an LLM built from its config dict by kind name."""
    config = {"vocab_size": 32, "n_layers": 1, "n_heads": 2, "d_model": 16, "max_seq_len": 8}
    model = models.build("llm", config)
    assert isinstance(model, Transformer) and model.cfg.d_model == 16
    with pytest.raises(CheckpointError, match="model kind 'unet' is not registered"):
        models.build("unet", {})


def test_checkpoints_written_before_kinds_existed_are_detected(tmp_path):
    """A config.json without "kind" (runs from earlier versions) is recognised by each kind's detect()."""
    models.save(perturb(tiny_vision("cnn")), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    del meta["kind"]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    assert models.open_model(tmp_path).kind.name == "vision"


def test_wrong_kind_is_refused_naming_both(tmp_path):
    models.save(tiny_llm(), tmp_path)
    with pytest.raises(CheckpointError, match=r"holds a 'llm' model .*needs a model tagged classifier .*vision"):
        models.open_model(tmp_path, tags="classifier", what="frontier explain gradcam")
    with pytest.raises(CheckpointError, match=r"'llm' model .*needs rl-policy"):
        models.load(tmp_path, kind="rl-policy")


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("file", "is a file, not a model folder"),
    ("empty", "holds no model"),
    ("unfinished", "has not finished"),
    ("bad_json", "not valid JSON"),
    ("unknown_kind", "kind='no-such-kind', which this install does not know"),
    ("no_kind", "names no model kind"),
    ("no_weights", "has no model.safetensors"),
])
def test_bad_folders_are_one_clear_error(tmp_path, case, message):
    path = tmp_path / "m"
    if case == "file":
        path.write_text("x")
    elif case != "missing":
        path.mkdir()
    if case == "unfinished":
        (path / "checkpoints").mkdir()
    if case == "bad_json":
        (path / "config.json").write_text("{not json")
    if case == "unknown_kind":
        (path / "config.json").write_text(json.dumps({"kind": "no-such-kind", "model": {}}))
    if case == "no_kind":
        (path / "config.json").write_text(json.dumps({"model": {"hidden": 3}}))
    if case == "no_weights":
        (path / "config.json").write_text(json.dumps({"kind": "vision", "model": {"name": "cnn"}}))
    with pytest.raises(CheckpointError, match=message):
        models.load(path)


def test_save_refuses_a_foreign_module(tmp_path):
    with pytest.raises(CheckpointError, match="no registered model kind"):
        models.save(torch.nn.Linear(2, 2), tmp_path)


def test_explain_refuses_a_non_classifier_in_one_line(tmp_path):
    """`frontier explain gradcam --model` accepts any classifier kind and names the problem otherwise."""
    models.save(tiny_llm(), tmp_path / "llm")
    r = subprocess.run([sys.executable, "-m", "frontierkit.cli", "explain", "gradcam", "--model",
                        str(tmp_path / "llm"), "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "holds a 'llm' model" in r.stderr and "frontier explain gradcam needs a model tagged classifier" in r.stderr


def test_explain_gradcam_on_a_saved_classifier(tmp_path):
    """Grad-CAM through the CLI on a registry-saved ViT: one map per input, non-negative, not all zero."""
    import numpy as np
    models.save(perturb(tiny_vision("vit")), tmp_path / "vit", run={"data": {"name": "digits"}})
    r = subprocess.run([sys.executable, "-m", "frontierkit.cli", "explain", "gradcam", "--model",
                        str(tmp_path / "vit"), "--input", "test:0-3", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    maps = np.load(tmp_path / "x" / "gradcam.npy")
    assert maps.shape == (4, 8, 8) and (maps >= 0).all() and maps.max() > 0


def test_areas_declare_commands_tour_sections_and_kinds_once():
    from frontierkit.areas import AREAS, manifests, model_kinds, tour_sections
    from frontierkit.cli import build_parser
    import frontierkit
    present = [a for a in AREAS if (Path(frontierkit.__file__).parent / a / "manifest.py").exists()]
    names = [m.name for m in manifests()]
    assert names == present and names[:6] == ["train", "data", "llm", "vision", "explain", "rl"]
    assert set(model_kinds()) >= {"llm", "vision", "rl-policy"}
    assert set(tour_sections()) >= {"train", "distributed", "llm", "vision", "explain", "rl"}
    choices = build_parser()._subparsers._group_actions[0].choices      # every area with commands + tour
    commands = {n for n, p in choices.items() if p.prog.split()[-1] == n}  # aliases (agent -> agents) aside
    assert commands == {m.name for m in manifests() if m.commands} | {"tour"}


class Scaled(torch.nn.Module):
    """A structural change (a new parameter) that only a registered transform can rebuild."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.scale = inner, torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.inner(x) * self.scale


def scale_head(model: torch.nn.Module, spec: dict) -> torch.nn.Module:
    model.head = Scaled(model.head)
    model.frontier_transforms = [*getattr(model, "frontier_transforms", []), spec]
    return model


def test_transformed_models_reload_through_their_transform(tmp_path, monkeypatch):
    """A transform (as compress' quantizers will be) is recorded in config.json and re-applied on load
    before the weights; an unknown transform is one clear error."""
    monkeypatch.setattr(models, "model_transforms", lambda: {"scale-head": f"{__name__}:scale_head"})
    model = scale_head(tiny_vision("cnn"), {"name": "scale-head", "note": 1})
    with torch.no_grad():
        model.head.scale.fill_(3.0)
    models.save(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["transforms"] == [{"name": "scale-head", "note": 1}]
    loaded = models.load(tmp_path)
    x = torch.rand(2, 1, 8, 8)
    assert isinstance(loaded.head, Scaled) and loaded.head.scale.item() == 3.0
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    monkeypatch.setattr(models, "model_transforms", lambda: {})
    with pytest.raises(CheckpointError, match="lists transform 'scale-head', which this install does not know"):
        models.load(tmp_path)
