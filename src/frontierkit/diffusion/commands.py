"""``frontier diffusion {train,sample,controlnet,export}``: train pixel/latent diffusion models and a
ControlNet on digits/shapes, sample them (or diffusers folders) with any scheduler and guidance, export
diffusers folders."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SCHEDULER_NAMES = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
                   "euler-a": "EulerAncestralDiscreteScheduler", "dpm": "DPMSolverMultistepScheduler"}


def unet_or_pipeline_folder(what: str):
    """A typed argument: a diffusion-unet run/model folder (ours or diffusers') or a diffusers pipeline folder."""
    from .. import argtypes as at
    unet = at.model_folder(kind="diffusion-unet", what=what)

    def convert(s: str) -> str:
        from .folders import is_diffusers_pipeline
        try:
            if is_diffusers_pipeline(s):
                return s
        except (OSError, ValueError):
            pass
        return unet(s)
    return at.ArgType("model", "a diffusion-unet run/model folder or a diffusers pipeline folder", convert,
                      model_kind="diffusion-unet")


def text_encoder_folder(what: str):
    """A typed argument: a kit model folder tagged "text-encoder" (e.g. a CLIP run)."""
    from .. import argtypes as at
    from .text import TEXT_ENCODER_TAG
    return at.model_folder(tags=TEXT_ENCODER_TAG, what=what)


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .train import ControlNetRunConfig, DiffusionRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="diffusion_cmd", metavar="CMD")
    t = cmds.add_parser("train", help="train a UNet (pixels or VAE latents) or the shapes VAE; weights in <out>/model")
    t.add_argument("--data", dest="data_name", default=None, choices=("digits", "shapes"),
                   help="dataset (shorthand for --data.name)")
    t.add_argument("--condition", dest="condition", default=None, choices=("none", "class", "text"),
                   help="conditioning (shorthand for --data.condition; text needs shapes)")
    t.add_argument("--vae", dest="vae_dir", default=None, metavar="DIR",
                   type=at.model_folder(kind="diffusion-vae", what="frontier diffusion train --vae"),
                   help="train in the latent space of this VAE run (shorthand for --data.vae)")
    t.add_argument("--text-encoder", dest="text_encoder_dir", default=None, metavar="DIR",
                   type=text_encoder_folder("frontier diffusion train --text-encoder"),
                   help="a kit text encoder (registry tag text-encoder, e.g. a CLIP run) for --condition text "
                        "(shorthand for --data.text_encoder; default: the shapes caption encoder)")
    t.add_argument("--stage", dest="stage", default=None, choices=("unet", "vae"), help="what to train")
    add_run_args(t, DiffusionRunConfig, "diffusion")
    t.set_defaults(func=train_cmd)

    c = cmds.add_parser("controlnet", help="train a ControlNet (outline -> shape) on a frozen shapes text UNet")
    c.add_argument("--unet", dest="unet_dir", required=True, metavar="DIR",
                   type=at.model_folder(kind="diffusion-unet", what="frontier diffusion controlnet --unet"),
                   help="run folder of `frontier diffusion train --data shapes --condition text --vae ...`")
    c.add_argument("--control", dest="control", default=None, choices=("outline", "mask"),
                   help="control image: the shape's outline (edges) or filled mask (shorthand for --condition)")
    add_run_args(c, ControlNetRunConfig, "controlnet")
    c.set_defaults(func=controlnet_cmd)

    s = cmds.add_parser("sample", help="generate images from a trained run or a diffusers folder into a PNG grid")
    s.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=unet_or_pipeline_folder("frontier diffusion sample"),
                   help="a `frontier diffusion train` run folder, a diffusers pipeline folder (unet/, vae/, "
                        "scheduler/) or a diffusers UNet folder")
    s.add_argument("--text-encoder", dest="text_encoder_dir", default=None, metavar="DIR",
                   type=text_encoder_folder("frontier diffusion sample --text-encoder"),
                   help="a kit text encoder (tag text-encoder) for a text-conditioned diffusers UNet, or to replace "
                        "the run's own")
    s.add_argument("--prompt", action="append", default=None, type=at.text(200),
                   help="caption (repeatable; text-conditioned runs), e.g. 'a large red circle in the center'")
    s.add_argument("--negative-prompt", default=None, type=at.text(200, nonempty=False))
    s.add_argument("--label", action="append", type=at.integer(0, 9), default=None,
                   help="class (repeatable; class-conditional runs)")
    s.add_argument("--n", type=at.integer(1, 1024), default=16, help="images (unconditional runs)")
    s.add_argument("--steps", type=at.integer(1, 1000), default=20, help="sampling steps")
    s.add_argument("--scheduler", default="dpm", choices=tuple(SCHEDULER_NAMES), help="sampler")
    s.add_argument("--guidance", type=at.number(0.0, 50.0), default=3.0, help="classifier-free guidance scale s")
    s.add_argument("--guidance-rescale", type=at.number(0.0, 1.0), default=0.0, help="Lin et al. 2023 phi")
    s.add_argument("--controlnet", dest="controlnet_dir", default=None, metavar="DIR",
                   type=at.model_folder(kind="controlnet", what="frontier diffusion sample --controlnet"),
                   help="a ControlNet run: conditions on held-out shapes outlines (the prompts default to their captions)")
    s.add_argument("--seed", type=at.seed(), default=0)
    s.add_argument("--out", metavar="PNG", type=at.out_file((".png",)), default="samples.png")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=sample_cmd)

    e = cmds.add_parser("export", help="write a trained UNet / VAE / ControlNet as a diffusers folder")
    e.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=at.model_folder(kind=("diffusion-unet", "diffusion-vae", "controlnet"),
                                        what="frontier diffusion export"))
    e.add_argument("--out", metavar="DIR", type=at.out_dir(), required=True)
    e.add_argument("--pipeline", action="store_true",
                   help="a UNet run as a diffusers pipeline folder (model_index.json, unet/, vae/, scheduler/)")
    e.set_defaults(func=export_cmd)


def _base(args: argparse.Namespace) -> dict:
    """Shorthands -> config overrides (--config and dotted overrides still win)."""
    data = {}
    if args.data_name:
        data["name"] = args.data_name
    if args.condition:
        data["condition"] = args.condition
    if args.vae_dir:
        data["vae"] = str(Path(args.vae_dir).resolve())
    if args.text_encoder_dir:
        data["text_encoder"] = str(Path(args.text_encoder_dir).resolve())
    base: dict = {"data": data} if data else {}
    if args.stage:
        base["stage"] = args.stage
    return base


def train_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from ..config import to_dict
    from .train import train_unet, train_vae

    cfg = build_config(args, base=_base(args))
    run = start_run(args, cfg)
    try:
        fn = train_vae if cfg.stage == "vae" else train_unet
        fn(cfg, run.out, tracker=run.tracker, quiet=run.quiet, resume=True)
    finally:
        run.tracker.close()
    print(json.dumps({"stage": cfg.stage, "data": to_dict(cfg.data), "model_dir": str(run.out / "model")}))
    return 0


def controlnet_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .train import train_controlnet

    base = {"unet": str(Path(args.unet_dir).resolve())}
    if args.control:
        base["condition"] = args.control
    cfg = build_config(args, base=base)
    run = start_run(args, cfg)
    try:
        train_controlnet(cfg, run.out, tracker=run.tracker, quiet=run.quiet, resume=True)
    finally:
        run.tracker.close()
    print(json.dumps({"unet": cfg.unet, "model_dir": str(run.out / "model")}))
    return 0


def _run_folder(path: str) -> Path:
    """A run folder from the run or its model/ folder."""
    p = Path(path)
    return p.parent if p.name == "model" else p


def _control_kind(controlnet_dir: str) -> str:
    """outline or mask: what the ControlNet run was trained on (outline for folders without a run config)."""
    from ..models import open_model
    run = open_model(controlnet_dir, kind="controlnet").run or {}
    return run.get("condition", "outline")


def sample_cmd(args: argparse.Namespace) -> int:
    import torch

    from ..errors import ConfigError
    from .data import shapes_data
    from .experiments import generate, pipeline_for
    from .folders import open_parts

    run = Path(args.model_dir)
    run = _run_folder(args.model_dir) if (run.parent / "run_config.json").is_file() else run
    parts = open_parts(run, args.text_encoder_dir or "")
    cond = parts.condition
    control = None
    prompts = args.prompt
    if args.controlnet_dir:
        d = parts.run.data if parts.run is not None else None
        te = shapes_data("test", d.shapes_n, d.shapes_size, d.seed) if d else shapes_data("test")
        n = len(prompts) if prompts else min(args.n, len(te))
        if n > len(te):
            raise ConfigError(f"{n} prompts but only {len(te)} held-out control images; pass fewer --prompt")
        control = te.control(_control_kind(args.controlnet_dir))[:n]
        prompts = prompts or te.captions[:n]
    if cond == "text" and not prompts:
        raise ConfigError(f"{run} is text-conditioned: pass --prompt 'a large red circle in the center'")
    if cond != "text" and (prompts or args.negative_prompt):
        raise ConfigError(f"{run} is not text-conditioned (condition={cond}); drop --prompt/--negative-prompt")
    if cond != "class" and args.label:
        raise ConfigError(f"{run} is not class-conditional (condition={cond}); drop --label")
    n_classes = parts.unet.cfg.num_class_embeds or 1
    if args.label and max(args.label) >= n_classes - 1:
        raise ConfigError(f"--label {max(args.label)} is not a class of {run} (0..{n_classes - 2})")
    pipe = pipeline_for(run, SCHEDULER_NAMES[args.scheduler],
                        controlnet=_run_folder(args.controlnet_dir) if args.controlnet_dir else None,
                        text_encoder=args.text_encoder_dir or "")
    labels = torch.tensor(args.label) if args.label else (torch.arange(args.n) % (n_classes - 1) if cond == "class" else None)
    n = len(prompts) if prompts else (len(labels) if labels is not None else args.n)
    scale = args.guidance if cond != "none" else 1.0
    images = generate(pipe, n, args.steps, seed=args.seed, guidance_scale=scale, prompts=prompts, labels=labels,
                      control=control, progress=not args.quiet, negative_prompt=args.negative_prompt)
    save_grid(images, args.out, titles=prompts)
    print(json.dumps({"out": str(args.out), "n": n, "scheduler": args.scheduler, "steps": args.steps}))
    return 0


def save_grid(images, path: str | Path, titles: list[str] | None = None) -> None:
    """A PNG grid of (N, C, H, W) images in [0, 1]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = images.shape[0]
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            if titles:
                ax.set_title(titles[i][:28], fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def export_cmd(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..models import check_folder, open_model
    from .convert import to_diffusers
    from .folders import export_pipeline

    if args.pipeline:
        run = _run_folder(args.model_dir)
        if not (run / "run_config.json").is_file() or check_folder(run)[2].name != "diffusion-unet":
            raise ConfigError(f"--pipeline exports a `frontier diffusion train` UNet run folder; {args.model_dir} "
                              "is not one")
        out = export_pipeline(run, args.out)
        print(json.dumps({"kind": "pipeline", "out": str(out)}))
        return 0
    loaded = open_model(args.model_dir, kind=("diffusion-unet", "diffusion-vae", "controlnet"))
    out = to_diffusers(loaded.model, args.out)
    sched = _run_folder(args.model_dir) / "scheduler_config.json"
    if sched.is_file():
        (Path(args.out) / "scheduler_config.json").write_text(sched.read_text())
    print(json.dumps({"kind": loaded.kind.name, "out": str(out)}))
    return 0
