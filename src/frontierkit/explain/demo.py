"""Tour section: Grad-CAM, Grad-CAM++, DeepSHAP and Integrated Gradients on a digits CNN; a SHAP image
plot; the deletion/insertion faithfulness table; token attributions for a toy language model."""
from __future__ import annotations

from ..report import Section, TourContext


def _token_example() -> str:
    """Per-token IG of a tiny LM's next-token logit, through its embedding layer (no llm import)."""
    import torch
    from torch import nn

    from .ig import token_attributions

    class TinyLM(nn.Module):
        def __init__(self, vocab: int = 12, dim: int = 16):
            super().__init__()
            self.embed, self.mix, self.head = nn.Embedding(vocab, dim), nn.Linear(dim, dim), nn.Linear(dim, vocab)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(torch.tanh(self.mix(self.embed(ids))).cumsum(1))   # (B, T, V)

    torch.manual_seed(0)
    lm = TinyLM().eval()
    ids = torch.tensor([[3, 7, 1, 9, 4, 2]])
    res, tok = token_attributions(lm, lm.embed, ids, steps=64)
    cells = "  ".join(f"{int(i)}:{float(a):+.3f}" for i, a in zip(ids[0], res.attributions[0]))
    return (f"next token predicted: {int(tok[0])}\nper-token attribution (token:IG) {cells}\n"
            f"completeness delta: {float(res.delta[0]):.2e}\n"
            "call: token_attributions(model, model.embed, input_ids) -> (IGResult, token)")


def tour(ctx: TourContext) -> Section:
    import torch
    torch.set_num_threads(1)   # tiny models: one thread is as fast; the tour restores the count after

    from ..vision import VisionDataConfig, load_data, run_config_for, train_classifier
    from .faithfulness import faithfulness_table, standard_methods
    from .gradcam import GradCAM, GradCAMPlusPlus
    from .ig import integrated_gradients
    from .plots import methods_figure, shap_image_figure
    from .shap import DeepExplainer

    model, metrics = train_classifier(run_config_for("cnn", steps=400 if ctx.quick else 800), ctx.out / "cnn",
                                      quiet=ctx.quiet)
    (x_tr, _), (x_te, y_te) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    x, y = x_te[:6], y_te[:6]
    background = x_tr[:50]
    maps = {"Grad-CAM": GradCAM(model).generate(x, y), "Grad-CAM++": GradCAMPlusPlus(model).generate(x, y),
            "DeepSHAP": DeepExplainer(model, background).shap_values(x, y),
            "IG": integrated_gradients(model, x, y, steps=32).attributions}
    titles = [f"label {int(t)}" for t in y]
    explainer = DeepExplainer(model, background)
    sv = explainer.shap_values(x[:3])
    n = 30 if ctx.quick else 100
    table = faithfulness_table(model, x_te[:n], y_te[:n], standard_methods(model, background))
    for r in table:
        r["deletion_auc"], r["insertion_auc"] = round(r["deletion_auc"], 3), round(r["insertion_auc"], 3)
    return Section(
        title="Explain: Grad-CAM, SHAP, Integrated Gradients",
        summary=f"A digits CNN (test accuracy {metrics['test_acc']:.3f}) explained four ways. DeepSHAP values "
                f"add up exactly to f(x) - E f(background); Grad-CAM equals captum's LayerGradCam to 1e-6. "
                f"Faithfulness (Petsiuk et al. 2018): deleting the most important pixels first should make "
                f"the class probability fall fast (low deletion AUC); inserting them should restore it "
                f"fast (high insertion AUC). Random maps are the floor.",
        figures=[("heatmaps per method (|attribution|) for six test digits", methods_figure(x, maps, titles)),
                 ("SHAP image plot: red pushes a class up, blue down", shap_image_figure(sv, x[:3]))],
        tables=[(f"faithfulness on {n} test digits (lower deletion / higher insertion is better)", table)],
        text=[("token attributions for a language model's next-token logit", _token_example())])
