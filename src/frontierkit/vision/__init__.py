"""Small image classifiers shared by explain, compress, robust and privacy: MLP, CNN, ResNet, ViT."""
from .models import (MLP, MODEL_NAMES, SmallCNN, SmallResNet, TinyViT, VisionModelConfig, build_model,
                     count_parameters)
from .train import (VisionDataConfig, VisionRunConfig, accuracy, load_data,
                    run_config_for, train_classifier)

__all__ = ["MLP", "MODEL_NAMES", "SmallCNN", "SmallResNet", "TinyViT", "VisionModelConfig", "build_model",
           "count_parameters", "VisionDataConfig", "VisionRunConfig", "accuracy",
           "load_data", "run_config_for", "train_classifier"]
