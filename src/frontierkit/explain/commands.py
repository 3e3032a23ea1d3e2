"""``frontier explain {gradcam,shap,ig} --model DIR --input SPEC --out DIR``: explain the predictions of
any classifier kind the model registry loads (images -> logits); writes PNG figures, the values (.npy)
and a summary (explain.json)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import argtypes as at


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="explain_cmd", metavar="CMD")
    g = cmds.add_parser("gradcam", help="Grad-CAM / Grad-CAM++ / HiResCAM heatmaps")
    g.add_argument("--method", default="gradcam", choices=("gradcam", "gradcam++", "hirescam"))
    g.add_argument("--layer", default=None, help="dotted module name (default: the model's cam_layer)")
    g.set_defaults(func=gradcam_cmd)
    s = cmds.add_parser("shap", help="SHAP values for every class (SHAP image plot)")
    s.add_argument("--explainer", default="auto", choices=("auto", "deep", "gradient", "kernel"),
                   help="deep (DeepLIFT rules, exact additivity), gradient (expected gradients, any "
                        "differentiable model), kernel (model-agnostic); auto: deep, else gradient with a note")
    s.add_argument("--background", type=at.integer(1, 100_000), default=100, help="training images used as references")
    s.add_argument("--nsamples", type=at.integer(1, 1_000_000), default=200,
                   help="gradient: draws per input; kernel: coalitions per input (default 200)")
    s.set_defaults(func=shap_cmd)
    i = cmds.add_parser("ig", help="Integrated Gradients with the convergence delta")
    i.add_argument("--steps", type=at.integer(1, 100_000), default=50, help="path points (Gauss-Legendre)")
    i.set_defaults(func=ig_cmd)
    for c in (g, s, i):
        c.add_argument("--model", required=True, metavar="DIR",
                       type=at.model_folder(tags="classifier", what=c.prog),
                       help="run or model folder of any classifier kind (e.g. from `frontier vision train`)")
        c.add_argument("--input", default="test:0-7", metavar="SPEC", type=input_spec,
                       help="images: SPLIT:I-J (rows of the model's dataset, e.g. test:0-7) or a .npy file "
                            "of shape (N, C, H, W) or (N, H, W)")
        c.add_argument("--target", default="pred", type=target_spec, help="class to explain: pred, label or an integer")
        c.add_argument("--out", default="runs/explain", metavar="DIR", type=at.out_dir(), help="output folder")


def _input_spec(spec: str) -> str:
    """Parse-time check of --input: SPLIT:I-J with 0 <= I <= J, or an existing .npy file."""
    import argparse
    allowed = "SPLIT:I-J (train or test, 0 <= I <= J, e.g. test:0-7) or an existing .npy file"
    if spec.endswith(".npy"):
        if not at._is("is_file", Path(spec)):
            raise argparse.ArgumentTypeError(f"{spec!r} is invalid: {allowed} (file not found)")
        return spec
    split, _, rows = spec.partition(":")
    lo, _, hi = rows.partition("-")
    ok = split in ("train", "test") and lo.isascii() and lo.isdigit() and (not hi or (hi.isascii() and hi.isdigit()))
    if not ok or int(lo) > int(hi or lo) or int(hi or lo) > 10**9:
        raise argparse.ArgumentTypeError(f"{spec[:60]!r} is invalid: {allowed}")
    return spec


def _target_spec(value: str) -> str:
    """Parse-time check of --target: pred, label or a class index >= 0."""
    import argparse
    v = value.strip()
    if v in ("pred", "label") or (v.isascii() and v.isdigit() and int(v) < 10**6):
        return v
    raise argparse.ArgumentTypeError(f"{value[:60]!r} is invalid: pred, label or a class index in [0, 999999]")


input_spec = at.ArgType("spec", "SPLIT:I-J or a .npy file", _input_spec)
target_spec = at.ArgType("spec", "pred, label or a class index", _target_spec)


def load_inputs(loaded, spec: str):
    """(images (N, C, H, W), labels (N,) or None) from SPLIT:I-J of the model's data or a .npy file."""
    import numpy as np
    import torch

    from ..errors import DataError

    if spec.endswith(".npy"):
        if not Path(spec).is_file():
            raise DataError(f"--input {spec!r} does not exist; pass a .npy file or SPLIT:I-J")
        try:
            x = torch.as_tensor(np.load(spec, allow_pickle=False), dtype=torch.float32)
        except (ValueError, OSError, TypeError, EOFError) as e:
            raise DataError(f"--input {spec!r} is not a readable numeric .npy array ({str(e)[:120]})") from None
        x = x[:, None] if x.ndim == 3 else x
        if x.ndim != 4:
            raise DataError(f"--input {spec!r} has shape {tuple(x.shape)}; expected (N, C, H, W) or (N, H, W)")
        return x, None
    try:
        split, rows = spec.split(":")
        lo, _, hi = rows.partition("-")
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        raise DataError(f"--input {spec!r} is invalid: use SPLIT:I-J (e.g. test:0-7) or a .npy file") from None
    if split not in ("train", "test") or not 0 <= lo <= hi:
        raise DataError(f"--input {spec!r} is invalid: SPLIT is train or test and 0 <= I <= J")
    x, y = loaded.dataset(split)
    if hi >= len(x):
        raise DataError(f"--input {spec!r} is out of range: the {split} split has {len(x)} rows")
    return x[lo:hi + 1], y[lo:hi + 1]


def _setup(args: argparse.Namespace):
    import torch

    from ..errors import DataError
    from ..models import open_model

    loaded = open_model(args.model, tags="classifier", what=f"frontier explain {args.explain_cmd}")
    model = loaded.model
    x, y = load_inputs(loaded, args.input)
    try:
        with torch.no_grad():
            logits = model(x)                                              # (N, classes)
    except RuntimeError as e:
        raise DataError(f"--input {args.input!r} has shape {tuple(x.shape)}, which this model cannot read "
                        f"({str(e).splitlines()[0][:120]}); pass images of the model's input shape") from None
    pred = logits.argmax(-1)
    if args.target not in ("pred", "label") and not 0 <= int(args.target) < logits.shape[-1]:
        raise DataError(f"--target {args.target} is invalid: this model has {logits.shape[-1]} classes "
                        f"(0 to {logits.shape[-1] - 1})")
    if args.target == "pred":
        target = pred
    elif args.target == "label":
        if y is None:
            raise DataError("--target label needs --input SPLIT:I-J (a .npy file has no labels)")
        target = y
    else:
        try:
            target = torch.full_like(pred, int(args.target))
        except ValueError:
            raise DataError(f"--target {args.target!r} is invalid: pred, label or an integer") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return loaded, x, y, pred, target, out


def _summary(out: Path, name: str, x, y, pred, target, **extra) -> None:
    info = {"method": name, "n": len(x), "targets": target.tolist(), "predictions": pred.tolist(),
            "labels": None if y is None else y.tolist(), **extra}
    (out / "explain.json").write_text(json.dumps(info, indent=2))
    print(json.dumps({k: v for k, v in info.items() if k in ("method", "n", "files")}))


def gradcam_cmd(args: argparse.Namespace) -> int:
    import numpy as np

    from ..config import ConfigError
    from .gradcam import CAMS
    from .plots import overlay_figure, save_png

    loaded, x, y, pred, target, out = _setup(args)
    model, layer = loaded.model, None
    if args.layer:
        modules = dict(model.named_modules())
        if args.layer not in modules:
            raise ConfigError(f"--layer {args.layer!r} is not a module of this model; "
                              f"some names: {', '.join(list(modules)[1:12])}")
        layer = modules[args.layer]
    maps = CAMS[args.method](model, layer).generate(x, target)
    np.save(out / f"{args.method}.npy", maps.numpy())
    save_png(overlay_figure(x, maps, [f"t={int(t)}" for t in target]), out / f"{args.method}.png")
    _summary(out, args.method, x, y, pred, target, files=[f"{args.method}.png", f"{args.method}.npy"])
    return 0


def shap_cmd(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from ..config import ConfigError
    from .deeplift import UnsupportedOpError
    from .plots import save_png, shap_image_figure

    for name in ("background", "nsamples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} {getattr(args, name)} is invalid: pass an integer >= 1")
    loaded, x, y, pred, target, out = _setup(args)
    background = loaded.dataset("train")[0][: args.background]
    kind = "deep" if args.explainer == "auto" else args.explainer
    try:
        values, expected = _shap_values(kind, loaded.model, background, x, args.nsamples)
    except UnsupportedOpError as e:
        if args.explainer != "auto":
            raise
        print(f"frontier explain shap: DeepExplainer cannot explain this model ({e}); using the "
              f"GradientExplainer (expected gradients) instead", file=sys.stderr)
        kind = "gradient"
        values, expected = _shap_values(kind, loaded.model, background, x, args.nsamples)
    np.save(out / "shap.npy", values.numpy())                         # (n, C, H, W, K)
    np.save(out / "shap_target.npy", values.gather(-1, target.view(-1, 1, 1, 1, 1).expand(
        *values.shape[:-1], 1))[..., 0].numpy())
    save_png(shap_image_figure(values, x), out / "shap.png")
    _summary(out, f"{kind}-shap", x, y, pred, target, expected_value=expected.tolist(),
             files=["shap.png", "shap.npy", "shap_target.npy"])
    return 0


def _shap_values(kind: str, model, background, x, nsamples: int):
    """(values (n, *in, K), expected value (K,)) from the chosen explainer."""
    import torch

    from .shap import DeepExplainer, GradientExplainer, KernelExplainer
    if kind == "deep":
        e = DeepExplainer(model, background)
        return e.shap_values(x), e.expected_value
    if kind == "gradient":
        e = GradientExplainer(model, background)
        return e.shap_values(x, nsamples=nsamples), e.expected_value
    shape = x.shape[1:]

    def f(rows):                                                    # (N, M) pixels -> (N, K) logits
        with torch.no_grad():
            return model(torch.as_tensor(rows, dtype=torch.float32).view(-1, *shape)).numpy()
    e = KernelExplainer(f, background.flatten(1).numpy())
    phi = torch.as_tensor(e.shap_values(x.flatten(1).numpy(), nsamples=nsamples), dtype=torch.float32)
    return phi.view(len(x), *shape, -1), torch.as_tensor(e.expected_value)


def ig_cmd(args: argparse.Namespace) -> int:
    import numpy as np

    from .ig import integrated_gradients
    from .plots import overlay_figure, save_png

    loaded, x, y, pred, target, out = _setup(args)
    res = integrated_gradients(loaded.model, x, target, steps=args.steps)
    np.save(out / "ig.npy", res.attributions.numpy())
    save_png(overlay_figure(x, res.attributions.abs().sum(1), [f"t={int(t)}" for t in target]), out / "ig.png")
    _summary(out, "integrated-gradients", x, y, pred, target, convergence_delta=res.delta.tolist(),
             files=["ig.png", "ig.npy"])
    return 0
