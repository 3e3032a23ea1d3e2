"""Hugging Face CLIP text encoders (the ``clip-text`` kind) and our CLIP BPE tokenizer vs transformers (oracle).

A tiny hand-written BPE vocabulary (characters, their ``</w>`` variants, a few merges, the special tokens) is
written to tmp_path; transformers' CLIPTokenizer reads the same files. Token ids must be identical (exact), and
``encode_prompts`` must equal transformers' CLIPTextModel / CLIPTextModelWithProjection on those ids
(last_hidden_state, pooler_output / text_embeds) within 1e-5. Offline: tiny random models, save_pretrained.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from frontierkit import models  # noqa: E402
from frontierkit.errors import DataError  # noqa: E402
from frontierkit.multimodal.bpe import CLIPTokenizer  # noqa: E402
from frontierkit.multimodal.clip_text import CLIPTextEncoder  # noqa: E402

TOL = 1e-5
MAX_LEN = 16
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!,.'?-"
MERGES = ["t h", "th e</w>", "c a", "ca t</w>", "a n", "an d</w>", "o f</w>", "' s</w>", "p h", "ph o", "pho t",
          "phot o</w>"]
PROMPTS = ["The cat AND  the Dog!!", "  a photo of a cat's hat, 42 times.  ", "", "UPPER lower\tTab\nnew-line?",
           "café au lait", "the cat " * 12, "<|endoftext|> the"]


def write_vocab(folder) -> dict[str, int]:
    """vocab.json + merges.txt of a tiny CLIP BPE (the special tokens last, as in OpenAI's vocabulary)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(CHARS) + [c + "</w>" for c in CHARS] + ["".join(m.split()) for m in MERGES]
    vocab = {s: i for i, s in enumerate(symbols + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return vocab


def hf_tokenizer(folder, **kw):
    return transformers.CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                                      model_max_length=MAX_LEN, **kw)


def hf_ids(tok, prompts) -> torch.Tensor:
    return tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids


@pytest.mark.parametrize("pad", [None, "!"])
def test_clip_bpe_ids_match_transformers_clip_tokenizer(tmp_path, pad):
    """Our CLIPTokenizer = transformers CLIPTokenizer(padding="max_length", truncation=True), ids exact, for the
    vocab.json + merges.txt files, the tokenizer.json transformers saves, and a pad token of its own (SD 2's "!")."""
    vocab = write_vocab(tmp_path / "src")
    theirs = hf_tokenizer(tmp_path / "src", **({"pad_token": pad} if pad else {}))
    theirs.save_pretrained(tmp_path / "saved")                     # tokenizer.json + tokenizer_config.json
    shutil.copytree(tmp_path / "saved", tmp_path / "files")
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(tmp_path / "src" / f, tmp_path / "files" / f)
    (tmp_path / "files" / "tokenizer.json").unlink()
    want = hf_ids(theirs, PROMPTS)                                 # (B, 16)
    assert want[-2, -1] == vocab["<|endoftext|>"] and (want[2] == vocab[pad or "<|endoftext|>"]).sum() >= 14
    for folder in ("saved", "files"):
        ours = CLIPTokenizer.from_folder(tmp_path / folder)
        assert ours.cfg.model_max_length == MAX_LEN and ours.cfg.pad_token == (pad or "<|endoftext|>")
        assert torch.equal(ours(PROMPTS), want), folder
        assert ours.encode(PROMPTS[0]) == theirs(PROMPTS[0]).input_ids


@pytest.mark.parametrize("cls,eos", [("CLIPTextModel", "own"), ("CLIPTextModel", 2),
                                     ("CLIPTextModelWithProjection", "own")])
def test_clip_text_encode_prompts_matches_transformers(tmp_path, cls, eos):
    """A diffusers-layout text_encoder/ + tokenizer/ opened through the registry (tag text-encoder): encode_prompts
    = transformers last_hidden_state and pooler_output (or text_embeds) on CLIPTokenizer's ids (≤ 1e-5), for the
    first-EOS pooling rule and the legacy eos_token_id == 2 one (argmax of the ids); hidden_layer=k gives
    hidden_states[k] (SDXL: -2) ≤ 1e-5 with the same pooled output."""
    vocab = write_vocab(tmp_path / "src")
    hf_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "tokenizer")
    torch.manual_seed(0)
    cfg = transformers.CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=48,
                                      num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_LEN,
                                      projection_dim=24, bos_token_id=vocab["<|startoftext|>"],
                                      eos_token_id=vocab["<|endoftext|>"] if eos == "own" else eos, pad_token_id=1)
    te = getattr(transformers, cls)(cfg).eval()
    te.save_pretrained(tmp_path / "text_encoder")
    loaded = models.open_model(tmp_path / "text_encoder", tags="text-encoder")
    assert loaded.kind.name == "clip-text" and isinstance(loaded.model, CLIPTextEncoder)
    hidden, pooled = loaded.model.encode_prompts(PROMPTS)
    with torch.no_grad():
        out = te(hf_ids(hf_tokenizer(tmp_path / "src"), PROMPTS), output_hidden_states=True)
    ref_pooled = out.text_embeds if cls.endswith("Projection") else out.pooler_output
    assert hidden.shape == (len(PROMPTS), MAX_LEN, 32) and pooled.shape == ref_pooled.shape
    assert (hidden - out.last_hidden_state).abs().max() <= TOL
    assert (pooled - ref_pooled).abs().max() <= TOL
    for k in (-2, 0):                                   # SDXL's penultimate states; the embeddings
        h_k, p_k = loaded.model.encode_prompts(PROMPTS, hidden_layer=k)
        assert (h_k - out.hidden_states[k]).abs().max() <= TOL and torch.equal(p_k, pooled)
    with pytest.raises(DataError, match="hidden_layer=-4.*3 hidden states"):
        loaded.model.encode_prompts(PROMPTS, hidden_layer=-4)


def test_clip_text_saved_by_the_kit_keeps_its_tokenizer(tmp_path):
    """models.save of a clip-text model read from a diffusers text_encoder/ + ../tokenizer/ writes the tokenizer
    beside the weights (kind assets); models.open_model of the saved folder alone gives the same ids and the same
    encode_prompts output (torch.equal), so the folder moves without its old sibling."""
    import shutil
    vocab = write_vocab(tmp_path / "src")
    hf_tokenizer(tmp_path / "src", pad_token="!").save_pretrained(tmp_path / "sd" / "tokenizer")
    torch.manual_seed(0)
    transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=MAX_LEN, eos_token_id=vocab["<|endoftext|>"])).save_pretrained(
        tmp_path / "sd" / "text_encoder")
    model = models.open_model(tmp_path / "sd" / "text_encoder", tags="text-encoder").model
    models.save(model, tmp_path / "kit")
    shutil.rmtree(tmp_path / "sd")
    again = models.open_model(tmp_path / "kit", tags="text-encoder").model
    assert again.tokenizer.cfg == model.tokenizer.cfg and again.tokenizer.cfg.pad_token == "!"
    assert torch.equal(again.tokenizer(PROMPTS), model.tokenizer(PROMPTS))
    with torch.no_grad():
        for a, b in zip(again.encode_prompts(PROMPTS), model.encode_prompts(PROMPTS)):
            assert torch.equal(a, b)


def test_clip_text_without_tokenizer_is_one_line_data_error(tmp_path):
    """No vocab.json/merges.txt beside text_encoder/ or in ../tokenizer/: the weights load (ids still work, = the
    transformers model ≤ 1e-5, also with the ``text_model.``-prefixed keys of older transformers / hub SD folders)
    and encode_prompts is one DataError naming the files; a kit save keeps the weights."""
    from safetensors.torch import load_file, save_file
    torch.manual_seed(0)
    te = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=90, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=8, eos_token_id=89)).eval()
    te.save_pretrained(tmp_path / "text_encoder")
    model = models.load(tmp_path / "text_encoder")
    with pytest.raises(DataError, match="vocab.json") as err:
        model.encode_prompts(["a cat"])
    assert "\n" not in str(err.value)
    ids = torch.randint(0, 90, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(ids)[0] - te(ids).last_hidden_state).abs().max() <= TOL
        models.save(model, tmp_path / "kit")
        again = models.open_model(tmp_path / "kit", tags="text-encoder").model
        assert torch.equal(again(ids)[1], model(ids)[1])
    with pytest.raises(DataError, match="no tokenizer"):
        again.encode_prompts(["a cat"])
    (tmp_path / "old").mkdir()
    shutil.copy(tmp_path / "text_encoder" / "config.json", tmp_path / "old" / "config.json")
    state = load_file(str(tmp_path / "text_encoder" / "model.safetensors"))
    save_file({f"text_model.{k}": v for k, v in state.items()}, str(tmp_path / "old" / "model.safetensors"))
    with torch.no_grad():
        assert torch.equal(models.load(tmp_path / "old")(ids)[0], model(ids)[0])
