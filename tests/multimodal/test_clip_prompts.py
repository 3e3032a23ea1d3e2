"""CLIP as a text encoder through the registry (the contract the diffusion area relies on): the "clip" kind is
tagged "text-encoder" and ``encode_prompts(prompts) -> (hidden (B, L, D), pooled (B, P))`` with the model's own
tokenizer; clear errors for words outside the vocabulary and for Hugging Face folders without a tokenizer."""
from __future__ import annotations

import pytest
import torch

from frontierkit import models
from frontierkit.errors import DataError
from frontierkit.multimodal import CLIP
from frontierkit.multimodal.convert import clip_from_hf, clip_to_hf
from frontierkit.multimodal.data import WordTokenizer
from frontierkit.multimodal.train import default_clip_model


@pytest.fixture(scope="module")
def shapes_clip():
    torch.manual_seed(0)
    return CLIP(default_clip_model()).eval()


def test_encode_prompts_equals_the_text_tower_by_hand_and_encode_text(shapes_clip):
    """Oracle: the text tower run by hand (WordTokenizer ids, final LayerNorm, <eos> row, projection) — exact
    (tol 0); pooled equals encode_text of the same ids; L is text.context_length, D the text width."""
    m = shapes_clip
    prompts = ["a photo of a red circle", "a large blue square at the top left"]
    hidden, pooled = m.encode_prompts(prompts)
    L, D = m.cfg.text.context_length, m.cfg.text.width
    assert hidden.shape == (2, L, D) and pooled.shape == (2, m.cfg.embed_dim)
    ids, valid = WordTokenizer().batch(prompts, L)
    with torch.no_grad():
        ref = m.text.final_norm(m.text.hidden_states(ids, valid)[-1])
        torch.testing.assert_close(hidden, ref, atol=0, rtol=0)
        torch.testing.assert_close(pooled, m.encode_text(ids, valid), atol=0, rtol=0)
        one, _ = m.encode_prompts(prompts[:1])       # batch-independent: causal tower, padding masked
        torch.testing.assert_close(one[0, :6], hidden[0, :6], atol=1e-6, rtol=0)
    assert not torch.allclose(pooled[0], pooled[1])


def test_encode_prompts_refuses_unknown_words_and_too_long_prompts(shapes_clip):
    with pytest.raises(DataError, match="'dog' is not in the shapes vocabulary"):
        shapes_clip.encode_prompts(["a red dog"])
    with pytest.raises(DataError, match="at most 11"):
        shapes_clip.encode_prompts([" ".join(["red"] * 12)])
    with pytest.raises(DataError, match="list of strings"):
        shapes_clip.encode_prompts("a red circle")


def test_clip_kind_is_a_text_encoder_through_the_registry_and_hf_round_trip(shapes_clip, tmp_path):
    """The registry opens a kit CLIP by tags="text-encoder"; its to_hf folder keeps the tokenizer (same outputs,
    tol 0), while a Hugging Face CLIP folder without one gives a clear DataError."""
    models.save(shapes_clip, tmp_path / "kit")
    loaded = models.open_model(tmp_path / "kit", tags="text-encoder").model
    h0, p0 = shapes_clip.encode_prompts(["a green cross"])
    h1, p1 = loaded.encode_prompts(["a green cross"])
    assert torch.equal(h0, h1) and torch.equal(p0, p1)
    clip_to_hf(shapes_clip, tmp_path / "hf")
    h2, p2 = clip_from_hf(tmp_path / "hf").encode_prompts(["a green cross"])
    torch.testing.assert_close(h2, h0, atol=0, rtol=0)
    torch.testing.assert_close(p2, p0, atol=0, rtol=0)

    from transformers import CLIPConfig as HFConfig, CLIPModel
    torch.manual_seed(0)
    hf = CLIPModel(HFConfig(text_config=dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                             num_attention_heads=4, max_position_embeddings=12,
                                             eos_token_id=39, bos_token_id=1, pad_token_id=0),
                            vision_config=dict(image_size=16, patch_size=4, hidden_size=24, intermediate_size=40,
                                               num_hidden_layers=1, num_attention_heads=4), projection_dim=20))
    hf.save_pretrained(tmp_path / "plain")
    plain = models.open_model(tmp_path / "plain", tags="text-encoder").model
    with pytest.raises(DataError, match="has no tokenizer"):
        plain.encode_prompts(["a red circle"])
