"""Shared fixtures: a briefly trained digits CNN (saved like `frontier vision train` does) and test digits."""
from __future__ import annotations

import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet():
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def test_digits():
    from frontierkit.vision import VisionDataConfig, load_data
    x, y = load_data(VisionDataConfig(), "test")
    return x[:96], y[:96]


@pytest.fixture(scope="session")
def cnn(tmp_path_factory):
    """(model dir, model in eval mode): a digits CNN after 120 steps (~95% test accuracy)."""
    from frontierkit.vision import run_config_for, train_classifier
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("robust-cnn")
    model, _ = train_classifier(run_config_for("cnn", steps=120), out)
    return out, model.eval()


@pytest.fixture(scope="session")
def mlp(tmp_path_factory):
    """A digits MLP after 100 steps (no max-pool: no ties whose 1-ulp flips change gradient routing)."""
    from frontierkit.vision import run_config_for, train_classifier
    model, _ = train_classifier(run_config_for("mlp", steps=100), tmp_path_factory.mktemp("robust-mlp"))
    return model.eval()
