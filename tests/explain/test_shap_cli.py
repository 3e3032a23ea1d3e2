"""`frontier explain shap --explainer deep|gradient|kernel|auto` on any classifier kind the registry loads."""
import json

import numpy as np
import pytest
import torch

from frontierkit import models
from frontierkit.cli import main
from frontierkit.explain import GradientExplainer
from frontierkit.vision import build_model


def saved(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, image_size=8, width=16, depth=1, patch_size=4, heads=2)
    models.save(model, tmp_path / name, run={"data": {"name": "digits"}})
    return tmp_path / name, model.eval()


def shap_cli(model_dir, out, *extra):
    return main(["explain", "shap", "--model", str(model_dir), "--input", "test:0-1", "--out", str(out),
                 "--background", "8", *extra])


def test_auto_falls_back_to_gradient_explainer_on_the_vit(tmp_path, capsys):
    """DeepExplainer refuses the ViT (LayerNorm/attention have no DeepLIFT rule): auto says so and uses
    expected gradients; values equal GradientExplainer called directly (oracle: our own API, 1e-6)."""
    model_dir, model = saved(tmp_path, "vit")
    assert shap_cli(model_dir, tmp_path / "o", "--nsamples", "16") == 0
    assert "using the GradientExplainer" in capsys.readouterr().err
    info = json.loads((tmp_path / "o" / "explain.json").read_text())
    assert info["method"] == "gradient-shap"
    loaded = models.open_model(model_dir)
    x, bg = loaded.dataset("test")[0][:2], loaded.dataset("train")[0][:8]
    ref = GradientExplainer(model, bg).shap_values(x, nsamples=16)
    np.testing.assert_allclose(np.load(tmp_path / "o" / "shap.npy"), ref.numpy(), atol=1e-6)


def test_explicit_deep_on_the_vit_is_a_one_line_error(tmp_path, capsys):
    model_dir, _ = saved(tmp_path, "vit")
    assert shap_cli(model_dir, tmp_path / "o", "--explainer", "deep") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("frontier: error:") and err.count("\n") == 0


def test_kernel_explainer_values_add_up_to_the_prediction(tmp_path):
    """Kernel SHAP's constrained regression is exactly efficient (Lundberg & Lee 2017, eq. 8):
    sum of pixel values = f(x) - E_b f(b) for every class (invariant, 1e-4)."""
    model_dir, model = saved(tmp_path, "mlp")
    assert shap_cli(model_dir, tmp_path / "o", "--explainer", "kernel", "--nsamples", "300") == 0
    values = torch.as_tensor(np.load(tmp_path / "o" / "shap.npy"))         # (2, 1, 8, 8, 10)
    info = json.loads((tmp_path / "o" / "explain.json").read_text())
    loaded = models.open_model(model_dir)
    with torch.no_grad():
        fx = model(loaded.dataset("test")[0][:2])                          # (2, 10)
    delta = fx - torch.tensor(info["expected_value"])
    torch.testing.assert_close(values.flatten(1, -2).sum(1), delta.float(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("flag", ["--background", "--nsamples"])
def test_bad_counts_are_one_line_errors(tmp_path, capsys, flag):
    model_dir, _ = saved(tmp_path, "mlp")
    assert shap_cli(model_dir, tmp_path / "o", flag, "0") == 2
    assert f"{flag} 0 is invalid" in capsys.readouterr().err
