"""Shared fixtures: a briefly trained digits CNN (saved like `frontier vision train` does) and data."""
from __future__ import annotations

import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet():
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits():
    from frontierkit.vision import VisionDataConfig, load_data
    return load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory):
    """(model dir, model): a digits CNN after 200 steps (about 96% test accuracy)."""
    from frontierkit.vision import run_config_for, train_classifier
    out = tmp_path_factory.mktemp("cnn")
    model, _ = train_classifier(run_config_for("cnn", steps=200), out)
    return out, model.eval()
