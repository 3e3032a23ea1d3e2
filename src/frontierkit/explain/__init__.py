"""Explanations for any torch model: Grad-CAM (+ Grad-CAM++, HiResCAM), SHAP (Deep, Gradient,
Kernel, exact Shapley), Integrated Gradients (+ token attributions through an embedding layer),
faithfulness metrics and plots."""
from .deeplift import UnsupportedOpError, deeplift_rules
from .faithfulness import auc, deletion_insertion_curves, faithfulness_table, standard_methods
from .gradcam import CAMS, GradCAM, GradCAMPlusPlus, HiResCAM, normalize_maps, tokens_to_grid
from .ig import IGResult, integrated_gradients, layer_integrated_gradients, token_attributions
from .shap import (AdditivityError, DeepExplainer, GradientExplainer, KernelExplainer, exact_shapley,
                   shapley_kernel_weight)

__all__ = ["UnsupportedOpError", "deeplift_rules", "auc", "deletion_insertion_curves", "faithfulness_table",
           "standard_methods", "CAMS", "GradCAM", "GradCAMPlusPlus", "HiResCAM", "normalize_maps",
           "tokens_to_grid", "IGResult", "integrated_gradients", "layer_integrated_gradients",
           "token_attributions", "AdditivityError", "DeepExplainer", "GradientExplainer", "KernelExplainer",
           "exact_shapley", "shapley_kernel_weight"]
