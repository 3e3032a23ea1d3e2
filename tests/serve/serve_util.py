"""The tiny tokenizer and the tool-calling craft of the serve tests' model (see conftest.py)."""
from __future__ import annotations

import torch

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
FULL_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
ARGS_CALL = '{"city": "Paris"}}</tool_call>'
TEXT = ("The quick brown fox jumps over the lazy dog. def main():\n    return 0\n"
        "import json\nprint(json.dumps({'a': 1}))\nWhat is the weather in Paris? It is sunny.\n") * 40


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT], trainer=trainer)
    tok.add_tokens([FULL_CALL, ARGS_CALL])
    return tok


def craft_tool_calls(model, tok) -> None:
    """Reserve residual dims 56..61: prompt-end tokens -> call tokens -> <|endoftext|> (see module doc)."""
    from frontierkit.serve.chat_template import forced_prefix, render_default
    prompt = render_default(TOOL_MESSAGES, TOOLS)
    forced = prompt + forced_prefix({"type": "function", "function": {"name": "get_weather"}}, TOOLS)
    src_auto = tok.encode(prompt).ids[-1]
    src_args = tok.encode(forced).ids[-1]
    full, args, eos = (tok.token_to_id(t) for t in (FULL_CALL, ARGS_CALL, "<|endoftext|>"))
    assert len({src_auto, src_args, full, args}) == 4
    with torch.no_grad():
        emb, head = model.tok_emb.weight, model.lm_head.weight
        emb[:, 56:62] = 0
        for layer in model.layers:
            layer.attn.out.weight[56:62] = 0
            layer.mlp.down.weight[56:62] = 0
        head[:, 56:62] = 0
        for src, dims, dst in ((src_auto, slice(56, 58), full), (src_args, slice(58, 60), args),
                               (full, slice(60, 62), eos), (args, slice(60, 62), eos)):
            emb[src, dims] = 1.0
            head[dst, dims] = 50.0
