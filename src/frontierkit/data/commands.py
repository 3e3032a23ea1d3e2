"""``frontier data {info,tokenizer,shapes}``: look at the embedded datasets."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import argtypes as at


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    i = cmds.add_parser("info", help="sizes of pycorpus, digits and shapes")
    i.set_defaults(func=_info)
    t = cmds.add_parser("tokenizer", help="train (or load the cached) byte-level BPE on pycorpus and show a sample")
    t.add_argument("--vocab-size", type=at.integer(257, 65_536), default=1024)
    t.add_argument("--text", type=at.text(), default="def forward(self, x):\n    return self.proj(x)")
    t.set_defaults(func=_tokenizer)
    s = cmds.add_parser("shapes", help="render a grid of synthetic shapes with captions to a PNG")
    s.add_argument("--n", type=at.integer(1, 1024), default=16)
    s.add_argument("--seed", type=at.seed(), default=0)
    s.add_argument("--out", type=at.out_file((".png", ".pdf", ".svg", ".jpg")), default="runs/shapes.png")
    s.set_defaults(func=_shapes)


def _info(args: argparse.Namespace) -> int:
    from .digits import load_digits
    from .pycorpus import load_text, stdlib_files

    print(f"pycorpus: {len(stdlib_files())} stdlib files; train {len(load_text('train')) / 1e6:.1f} M chars, "
          f"val {len(load_text('val')) / 1e6:.2f} M chars")
    x, _ = load_digits("train")
    xt, _ = load_digits("test")
    print(f"digits: train {len(x)}, test {len(xt)}, images {tuple(x.shape[1:])}")
    print("shapes: generated on demand from a seed (frontierkit.data.shapes.make_shapes)")
    return 0


def tokenizer_sample(tok, text: str) -> str:
    """A readable table of how ``text`` splits into tokens."""
    enc = tok.encode(text)
    pieces = [tok.decode([i]) for i in enc.ids]
    return (f"{len(text)} chars -> {len(enc.ids)} tokens ({len(text) / max(1, len(enc.ids)):.2f} chars/token)\n"
            + " | ".join(repr(p)[1:-1] for p in pieces))


def _tokenizer(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from .pycorpus import train_tokenizer

    if args.vocab_size < 257:
        raise DataError(f"--vocab-size {args.vocab_size} is too small: need at least 257")
    tok = train_tokenizer(args.vocab_size)
    print(tokenizer_sample(tok, args.text))
    return 0


def shapes_figure(n: int = 16, seed: int = 0):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .shapes import make_shapes

    data = make_shapes(n, size=32, seed=seed)
    cols = min(8, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        ax = axes.flat[k]
        ax.imshow(data.images[k].permute(1, 2, 0).numpy())
        ax.set_title(data.captions[k].replace(" at the ", "\n").replace(" in the ", "\n"), fontsize=6)
    return fig


def _shapes(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shapes_figure(args.n, args.seed).savefig(out, dpi=120, bbox_inches="tight")
    print(f"wrote {out}")
    return 0
