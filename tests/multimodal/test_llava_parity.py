"""LLaVA against transformers' LlavaForConditionalGeneration (the oracle; CLIP vision tower + Llama text) on
tiny random configs saved with save_pretrained: fp32 tol 1e-5 on logits and on the loss with -100 labels,
greedy generation identical (single and left-padded batched), for vision_feature_layer in {-1, -2, [-2, -1]}
x {default, full}."""
from __future__ import annotations

import pytest
import torch

from frontierkit import models
from frontierkit.errors import DataError
from frontierkit.multimodal.llava import Llava, generate, llava_from_hf, llava_loss

ATOL = 1e-5
IMG, VOCAB = 3, 50


def random_hf(layer, select: str, tmp_path):
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    cfg = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=16, patch_size=4, hidden_size=24,
                           intermediate_size=40, num_hidden_layers=2, num_attention_heads=4),
        text_config=dict(model_type="llama", vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=0),
        image_token_index=IMG, vision_feature_layer=layer, vision_feature_select_strategy=select)
    torch.manual_seed(0)
    hf = LlavaForConditionalGeneration(cfg)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.normal_(1.0 if "norm" in name and p.ndim == 1 and "bias" not in name else 0.0, 0.2)
    hf.save_pretrained(tmp_path / "hf")
    return LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()


def prompts(n_img: int, lengths=(5, 3)):
    """Left-padded prompts: [pad.., text, <image> x n_img, text]; labels -100 except the last two tokens."""
    g = torch.Generator().manual_seed(2)
    rows = [torch.cat([torch.randint(4, VOCAB, (k,), generator=g), torch.full((n_img,), IMG),
                       torch.randint(4, VOCAB, (3,), generator=g)]) for k in lengths]
    t = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), t, dtype=torch.long)
    valid = torch.zeros(len(rows), t, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, t - len(r):], valid[i, t - len(r):] = r, True
    labels = torch.full_like(ids, -100)
    labels[:, -2:] = ids[:, -2:]
    return ids, valid, labels


@pytest.mark.parametrize("select", ["default", "full"])
@pytest.mark.parametrize("layer", [-1, -2, [-2, -1]])
def test_llava_matches_transformers(layer, select, tmp_path):
    """Oracle: transformers LlavaForConditionalGeneration (eager), folder -> ours via from_hf; fp32 tol 1e-5 on
    logits of real tokens and on the -100-masked loss; greedy generation of 6 tokens identical, batched
    (left-padded) and row by row."""
    hf = random_hf(layer, select, tmp_path)
    ours = llava_from_hf(tmp_path / "hf")
    n_img = ours.cfg.n_image_tokens
    assert n_img == 16 + (select == "full")
    ids, valid, labels = prompts(n_img)
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=pixels, attention_mask=valid.long(), labels=labels)
        logits = ours(ids, pixels, valid)
    torch.testing.assert_close(logits[valid], out.logits[valid], atol=ATOL, rtol=0)
    torch.testing.assert_close(llava_loss(logits, labels), out.loss, atol=ATOL, rtol=0)
    ref = hf.generate(input_ids=ids, pixel_values=pixels, attention_mask=valid.long(), max_new_tokens=6,
                      do_sample=False, pad_token_id=0)
    assert torch.equal(generate(ours, ids, pixels, 6, valid), ref)
    for i in range(2):
        row = valid[i]
        one = hf.generate(input_ids=ids[i:i + 1, row], pixel_values=pixels[i:i + 1], max_new_tokens=6,
                          do_sample=False, pad_token_id=0)
        assert torch.equal(generate(ours, ids[i:i + 1, row], pixels[i:i + 1], 6), one)


def test_image_token_count_mismatch_is_a_clear_error(tmp_path):
    """A prompt with one image token too few is refused with the counts, never silently shifted."""
    random_hf(-2, "default", tmp_path)
    ours = llava_from_hf(tmp_path / "hf")
    ids, valid, _ = prompts(ours.cfg.n_image_tokens - 1)
    with pytest.raises(DataError, match="image tokens"):
        ours(ids, torch.zeros(2, 3, 16, 16), valid)


def test_registry_round_trips_llava(tmp_path):
    """models.save / models.load(kind="llava") rebuild the LLM through the registry; logits bit-identical."""
    random_hf([-2, -1], "full", tmp_path)
    ours = llava_from_hf(tmp_path / "hf")
    models.save(ours, tmp_path / "kit")
    again = models.load(tmp_path / "kit", kind="llava")
    assert isinstance(again, Llava)
    ids, valid, _ = prompts(ours.cfg.n_image_tokens)
    pixels = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again(ids, pixels, valid), ours(ids, pixels, valid))


@pytest.mark.parametrize("layer,select", [(-2, "default"), ([-2, -1], "full")])
def test_llava_to_hf_round_trips_through_transformers(layer, select, tmp_path):
    """Oracle: transformers LlavaForConditionalGeneration.from_pretrained of our to_hf folder gives our logits
    (fp32 tol 1e-5) and greedy tokens; from_hf of that folder is bit-identical to the model written. Both a
    converted HF LLaVA and a kit-built one (LLM through the registry, tied=False) are written."""
    from transformers import LlavaForConditionalGeneration

    from frontierkit.multimodal import from_hf, to_hf
    from frontierkit.multimodal.llava import LlavaConfig, build_llava
    from frontierkit.multimodal.clip import CLIPVisionConfig
    from frontierkit.config import to_dict
    random_hf(layer, select, tmp_path)
    converted = llava_from_hf(tmp_path / "hf")
    torch.manual_seed(4)
    llm = {"family": "llama", "vocab_size": VOCAB, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_model": 32,
           "d_ff": 48, "max_seq_len": 64}
    cfg = LlavaConfig(vision=CLIPVisionConfig(image_size=16, patch_size=4, width=24, n_layers=2, n_heads=4,
                                              mlp_hidden=40), llm=llm,
                      feature_layers=tuple(layer) if isinstance(layer, list) else (layer,), select=select,
                      image_token_id=IMG)
    kit = build_llava(to_dict(cfg))
    with torch.no_grad():
        for name, p in kit.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.2)
    for i, ours in enumerate((converted, kit)):
        out = to_hf(ours.eval(), tmp_path / f"out{i}")
        hf = LlavaForConditionalGeneration.from_pretrained(out, attn_implementation="eager").eval()
        ids, valid, _ = prompts(ours.cfg.n_image_tokens)
        pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            logits = ours(ids, pixels, valid)
            ref = hf(input_ids=ids, pixel_values=pixels, attention_mask=valid.long()).logits
            torch.testing.assert_close(logits[valid], ref[valid], atol=ATOL, rtol=0)
            again = from_hf(out)
            assert torch.equal(again(ids, pixels, valid), logits)
        gen = hf.generate(input_ids=ids, pixel_values=pixels, attention_mask=valid.long(), max_new_tokens=4,
                          do_sample=False, pad_token_id=0)
        assert torch.equal(generate(ours, ids, pixels, 4, valid), gen)
