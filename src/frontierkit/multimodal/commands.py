"""``frontier multimodal {train-clip,zero-shot,retrieval,train-llava,ask}``."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .train import ClipRunConfig
    from .vqa import LlavaRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="multimodal_cmd", metavar="CMD")
    t = cmds.add_parser("train-clip", help="contrastive training on shapes; <out>/model (clip), <out>/zeroshot "
                                           "(a classifier for explain/robust)")
    add_run_args(t, ClipRunConfig, "clip")
    t.set_defaults(func=train_clip_cmd)
    z = cmds.add_parser("zero-shot", aliases=["zeroshot"], help="zero-shot accuracy of a CLIP by class prompts")
    z.add_argument("--model", dest="model_dir", required=True, metavar="DIR", help="CLIP run/model or HF folder",
                   type=at.model_folder("clip", what="frontier multimodal zero-shot"))
    z.add_argument("--split", default="held_out", choices=("train", "held_out"))
    z.add_argument("--template", default="ensemble", type=at.ArgType("template", "ensemble or a template", _template),
                   help='"ensemble" (every caption of the class) or a template like "a photo of a {color} {shape}"')
    z.set_defaults(func=zero_shot_cmd)
    r = cmds.add_parser("retrieval", help="image<->text recall@1/5 of a CLIP on held-out combinations")
    r.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=at.model_folder("clip", what="frontier multimodal retrieval"))
    r.add_argument("--n", type=at.integer(2, 1_000_000), default=256, help="pairs in the retrieval pool")
    r.set_defaults(func=retrieval_cmd)
    L = cmds.add_parser("train-llava", help="LLaVA stages 0-2 on the shapes QA + text-only and no-stage-1 baselines")
    add_run_args(L, LlavaRunConfig, "llava")
    L.set_defaults(func=train_llava_cmd)
    a = cmds.add_parser("ask", help="ask a trained LLaVA a question about an image")
    a.add_argument("--model", dest="model_dir", required=True, metavar="DIR", help="LLaVA run or model folder",
                   type=at.model_folder("llava", what="frontier multimodal ask"))
    a.add_argument("--image", required=True, type=at.ArgType("spec", "an image file or held_out:INDEX", _image_spec),
                   help="an image file (PNG of the model's size) or held_out:INDEX")
    a.add_argument("--question", required=True, type=at.text(1000), help='e.g. "what color is the shape?"')
    a.set_defaults(func=ask_cmd)


def _image_spec(value: str) -> str:
    """Parse-time check of --image: SPLIT:INDEX (held_out or train, INDEX >= 0) or an existing file."""
    from pathlib import Path

    from .. import argtypes as at
    split, sep, idx = value.partition(":")
    if (sep and split in ("held_out", "train") and idx.isascii() and idx.isdigit()) or at._is("is_file", Path(value)):
        return value
    raise argparse.ArgumentTypeError(f"{value[:60]!r} is invalid: an existing PNG/JPG file or held_out:INDEX "
                                     f"(INDEX an integer >= 0)")


def _template(value: str) -> str:
    """Parse-time check of --template: ``ensemble`` or text whose only fields are {color} and {shape}."""
    try:
        ok = bool(value.strip()) and (value == "ensemble" or bool(value.format(color="red", shape="circle")))
    except (KeyError, IndexError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{value[:60]!r} is invalid: ensemble, or a template whose only fields are "
                                         f"{{color}} and {{shape}}, e.g. 'a photo of a {{color}} {{shape}}'")
    return value


def _clip_data(loaded):
    from ..config import from_dict
    from .train import ShapesDataConfig
    return from_dict(ShapesDataConfig, loaded.run.get("data", {}), prefix="data.")


def train_clip_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .train import train_clip

    cfg = build_config(args)
    run = start_run(args, cfg)
    try:
        _, metrics = train_clip(cfg, run.out, tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    print(json.dumps({**metrics, "model_dir": str(run.out / "model"), "zeroshot_dir": str(run.out / "zeroshot")}))
    return 0


def zero_shot_cmd(args: argparse.Namespace) -> int:
    from ..models import open_model
    from .train import split, zero_shot

    loaded = open_model(args.model_dir, kind="clip", what="frontier multimodal zero-shot")
    s = split(_clip_data(loaded), args.split)
    print(json.dumps({"split": args.split, "n": len(s), "template": args.template,
                      **zero_shot(loaded.model, s, args.template)}))
    return 0


def retrieval_cmd(args: argparse.Namespace) -> int:
    from ..models import open_model
    from .train import retrieval, split

    loaded = open_model(args.model_dir, kind="clip", what="frontier multimodal retrieval")
    print(json.dumps({"split": "held_out", **retrieval(loaded.model, split(_clip_data(loaded), "held_out"), args.n)}))
    return 0


def train_llava_cmd(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..command import build_config, start_run
    from ..errors import ConfigError
    from .vqa import train_llava

    from ..models import open_model

    cfg = build_config(args)
    if not cfg.clip:
        raise ConfigError("clip='' is invalid: pass --clip RUN_DIR, a CLIP trained with frontier multimodal train-clip")
    clip = open_model(cfg.clip, kind="clip", what="frontier multimodal train-llava --clip")
    if clip.run.get("data") and not any(str(o).startswith("--data.") for o in getattr(args, "overrides", []) or []):
        cfg = replace(cfg, data=_clip_data(clip))        # the CLIP's own held-out split
    run = start_run(args, cfg)
    try:
        _, results = train_llava(cfg, run.out, clip=clip.model, quiet=run.quiet)
    finally:
        run.tracker.close()
    print(json.dumps({**results, "model_dir": str(run.out / "model")}))
    return 0


def load_image(spec: str, loaded, size: int):
    """(1, 3, S, S) in [0, 1] from a PNG/JPG file or ``held_out:INDEX`` of the model's shapes data."""
    from pathlib import Path

    import torch

    from ..errors import DataError
    if spec.startswith(("held_out:", "train:")):
        from ..config import from_dict
        from .train import ShapesDataConfig, split
        name, _, idx = spec.partition(":")
        s = split(from_dict(ShapesDataConfig, loaded.run.get("data", {}), prefix="data."), name)
        if not idx.isdigit() or int(idx) >= len(s):
            raise DataError(f"--image {spec!r}: the index must be an integer in [0, {len(s)})")
        return s.images[int(idx)][None], s.qa[int(idx)]
    if not Path(spec).is_file():
        raise DataError(f"--image {spec!r} is not a file; pass a PNG/JPG or held_out:INDEX")
    import matplotlib.image as mpimg
    try:
        img = torch.tensor(mpimg.imread(spec), dtype=torch.float32)
    except Exception as e:                     # PIL's UnidentifiedImageError, SyntaxError, OSError, ValueError...
        raise DataError(f"--image {spec!r} is not a readable PNG/JPG image ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:100] if str(e) else ''}); pass an image or held_out:INDEX") from None
    img = img / 255.0 if img.max() > 1 else img
    if img.ndim != 3 or img.shape[0] != size or img.shape[1] != size:
        raise DataError(f"--image {spec!r} is {tuple(img.shape)}; the model reads {size}x{size} RGB images")
    return img[..., :3].permute(2, 0, 1)[None], None


def ask_cmd(args: argparse.Namespace) -> int:
    import torch

    from ..models import open_model
    from .data import PAD, WordTokenizer
    from .llava import generate
    from .vqa import encode_qa

    loaded = open_model(args.model_dir, kind="llava", what="frontier multimodal ask")
    model, tok = loaded.model, WordTokenizer()
    pixels, truth = load_image(args.image, loaded, model.cfg.vision.image_size)
    ids = torch.tensor([encode_qa(tok, args.question.lower(), None, model.cfg.n_image_tokens)[0]])
    out = generate(model, ids, pixels, 3, stop_tokens=(tok.eos,), pad_id=PAD)[0, ids.shape[1]:].tolist()
    answer = tok.decode(out[:out.index(tok.eos)] if tok.eos in out else out)
    expected = dict(truth).get(args.question.lower()) if truth else None
    print(json.dumps({"question": args.question, "answer": answer, **({"expected": expected} if truth else {})}))
    return 0
