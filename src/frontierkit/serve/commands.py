"""``frontier serve --model DIR [--host --port]`` (an OpenAI-compatible server with continuous batching)
and ``frontier serve export-onnx --model DIR --out FILE`` (classifiers and LLMs to ONNX, checked
against onnxruntime)."""
from __future__ import annotations

import argparse
import json

from .. import argtypes as at

MAX_BODY_BYTES = 4 * 2**20
"""default request-body limit (``--max-body-bytes``): far above any prompt that fits a 128k-token context"""


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, help=text, description=text + ". `frontier serve --model DIR` serves; "
                       "`frontier serve export-onnx --model DIR --out FILE` exports.")
    p.add_argument("--model", dest="model_dir", metavar="DIR", type=at.model_folder(tags="lm", what="frontier serve"),
                   help="an LLM run folder, its model/ folder or a Hugging Face LLaMA/GPT-2/... folder "
                        "(with tokenizer.json)")
    p.add_argument("--host", default="127.0.0.1", type=at.text(max_len=255), help="address to listen on")
    p.add_argument("--port", type=at.integer(0, 65535), default=8000, help="TCP port (0: any free port)")
    p.add_argument("--model-id", default=None, type=at.text(max_len=256),
                   help="the name clients pass as `model` (default: the folder name)")
    p.add_argument("--max-batch", type=at.integer(1, 4096), default=32, help="sequences decoded together at most")
    p.add_argument("--max-waiting", type=at.integer(1, 1_000_000), default=256,
                   help="queued requests before answering 429 (bounds the memory of a burst)")
    p.add_argument("--max-body-bytes", type=at.integer(1024, 2**31), default=MAX_BODY_BYTES,
                   help="largest request body; larger ones get 413 before they are read")
    p.add_argument("--block-size", type=at.integer(1, 4096), default=16, help="tokens per KV block")
    p.add_argument("--num-blocks", type=at.integer(1, 100_000_000), default=None,
                   help="KV blocks in the pool (default: max-batch full-length sequences)")
    p.add_argument("--batching", choices=("continuous", "static", "single"), default="continuous")
    p.set_defaults(func=serve_cmd)
    cmds = p.add_subparsers(dest="serve_cmd", metavar="CMD")
    x = cmds.add_parser("export-onnx", help="export a classifier or an LLM to ONNX and check it with onnxruntime")
    x.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=at.model_folder(what="frontier serve export-onnx"),
                   help="a classifier (vision run) or LLM run folder, or a Hugging Face LLM folder")
    x.add_argument("--out", required=True, metavar="FILE", type=at.out_file((".onnx",)),
                   help="the .onnx file to write")
    x.add_argument("--no-cache", action="store_true",
                   help="LLM only: export full-sequence logits without past_key_values inputs/outputs")
    x.set_defaults(func=export_cmd)


def serve_cmd(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .server import serve

    if not args.model_dir:
        raise ConfigError("--model is required: pass an LLM run folder or a Hugging Face model folder "
                          "(or use `frontier serve export-onnx ...`)")
    serve(args.model_dir, args.host, args.port, model_id=args.model_id, max_batch=args.max_batch,
          max_waiting=args.max_waiting, max_body_bytes=args.max_body_bytes, block_size=args.block_size,
          num_blocks=args.num_blocks, mode=args.batching)
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    from .onnx_export import export_model

    report = export_model(args.model_dir, args.out, with_cache=not args.no_cache)
    print(json.dumps(report))
    return 0
