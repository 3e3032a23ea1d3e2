"""CLIP against transformers' CLIPModel (the oracle) on tiny random configs saved with save_pretrained:
weights converted HF -> ours and ours -> HF, fp32 tolerance 1e-5 on embeddings, both logit matrices, the
loss, every gradient (logit_scale's included) and the hidden_states tuples."""
from __future__ import annotations

import pytest
import torch

from frontierkit import models
from frontierkit.multimodal import CLIP, CLIPConfig, CLIPTextConfig, CLIPVisionConfig, clip_loss
from frontierkit.multimodal.clip import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX, clamp_logit_scale
from frontierkit.multimodal.convert import clip_from_hf, clip_to_hf

ATOL = 1e-5
VOCAB, T = 40, 9


def hf_config(act: str, eos: int):
    from transformers import CLIPConfig as HFConfig
    text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=12, hidden_act=act, eos_token_id=eos, bos_token_id=1, pad_token_id=0)
    vision = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=24, intermediate_size=40,
                  num_hidden_layers=2, num_attention_heads=4, hidden_act=act)
    return HFConfig(text_config=text, vision_config=vision, projection_dim=20, attn_implementation="eager")


def random_hf(act: str, eos: int, tmp_path, seed: int = 0):
    """A transformers CLIPModel with every weight random (LayerNorms too), saved and reloaded from disk."""
    from transformers import CLIPModel
    torch.manual_seed(seed)
    hf = CLIPModel(hf_config(act, eos))
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name != "logit_scale":
                p.normal_(0, 0.3 if "norm" in name else 0.1)
    hf.save_pretrained(tmp_path / "hf")
    return CLIPModel.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()


def batch(eos: int, seed: int = 1):
    """4 images and 4 texts of different lengths, right-padded with 0; EOS closes each text."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(4, 3, 16, 16, generator=g)
    ids = torch.zeros(4, T, dtype=torch.long)
    valid = torch.zeros(4, T, dtype=torch.bool)
    for i, n in enumerate([T, 6, 4, 7]):
        body = torch.randint(3, VOCAB - 1, (n - 1,), generator=g)
        ids[i, :n - 1], ids[i, n - 1] = body, eos
        valid[i, :n] = True
    if eos == 2:          # legacy rule: the EOT is the highest id of its row (OpenAI's vocabulary)
        ids[:, :][ids == 2] = VOCAB - 1
    return pixels, ids, valid


def assert_clip_matches(ours: CLIP, hf, eos: int):
    pixels, ids, valid = batch(eos)
    out = hf(input_ids=ids, pixel_values=pixels, attention_mask=valid.long(), return_loss=True,
             output_hidden_states=True)
    logits = ours(pixels, ids, valid)
    torch.testing.assert_close(logits, out.logits_per_image, atol=ATOL, rtol=0)
    torch.testing.assert_close(logits.T, out.logits_per_text, atol=ATOL, rtol=0)
    norm = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(norm(ours.encode_image(pixels)), out.image_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(norm(ours.encode_text(ids, valid)), out.text_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(clip_loss(logits), out.loss, atol=ATOL, rtol=0)
    vis = ours.visual.hidden_states(pixels)
    assert len(vis) == len(out.vision_model_output.hidden_states)
    for a, b in zip(vis, out.vision_model_output.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    txt = ours.text.hidden_states(ids, valid)
    assert len(txt) == len(out.text_model_output.hidden_states)
    for a, b in zip(txt, out.text_model_output.hidden_states):
        torch.testing.assert_close(a[valid], b[valid], atol=ATOL, rtol=0)      # padding queries: by design
    clip_loss(logits).backward()
    out.loss.backward()
    hf_grads = dict(hf.named_parameters())
    from frontierkit.multimodal.convert import key_to_hf
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, hf_grads[key_to_hf(name)].grad, atol=ATOL, rtol=0, msg=name)


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
@pytest.mark.parametrize("eos", [VOCAB - 1, 2])
def test_clip_from_hf_matches_transformers(act, eos, tmp_path):
    """Oracle: transformers CLIPModel (eager attention), HF folder -> ours; fp32 tol 1e-5 on logits both ways,
    embeddings, loss, hidden_states tuples and all gradients incl. logit_scale's; first-EOS (eos=39) and legacy
    argmax (eos=2) pooling; quick_gelu and gelu."""
    hf = random_hf(act, eos, tmp_path)
    ours = clip_from_hf(tmp_path / "hf")
    assert ours.cfg.text.eos_token_id == eos and ours.cfg.vision.activation == act
    assert_clip_matches(ours, hf, eos)


@pytest.mark.parametrize("eos", [VOCAB - 1, 2])
def test_clip_to_hf_matches_transformers(eos, tmp_path):
    """Oracle: transformers CLIPModel loaded from our to_hf folder; fp32 tol 1e-5 on everything
    assert_clip_matches checks."""
    from transformers import CLIPModel
    cfg = CLIPConfig(vision=CLIPVisionConfig(image_size=16, patch_size=4, width=24, n_layers=2, n_heads=4,
                                             mlp_hidden=40, activation="gelu"),
                     text=CLIPTextConfig(vocab_size=VOCAB, context_length=12, width=32, n_layers=2, n_heads=4,
                                         mlp_hidden=48, eos_token_id=eos), embed_dim=20)
    torch.manual_seed(5)
    ours = CLIP(cfg)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.3)
    clip_to_hf(ours, tmp_path / "out")
    hf = CLIPModel.from_pretrained(tmp_path / "out", attn_implementation="eager").eval()
    assert_clip_matches(ours, hf, eos)


def test_from_hf_reads_clip_folders_and_the_registry_round_trips_ours(tmp_path):
    """multimodal.from_hf reads a transformers CLIP folder (tol 1e-5 vs the oracle); models.save/load round-trips
    our CLIP bit-identically under kind "clip"."""
    from frontierkit.multimodal import from_hf
    hf = random_hf("quick_gelu", VOCAB - 1, tmp_path)
    ours = from_hf(tmp_path / "hf")
    assert isinstance(ours, CLIP)
    assert isinstance(models.load(tmp_path / "hf"), CLIP)        # the registry detects a HF CLIP folder too
    pixels, ids, valid = batch(VOCAB - 1)
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels, attention_mask=valid.long()).logits_per_image
        torch.testing.assert_close(ours(pixels, ids, valid), ref, atol=ATOL, rtol=0)
        models.save(ours, tmp_path / "kit")
        again = models.load(tmp_path / "kit", kind="clip")
        assert torch.equal(again(pixels, ids, valid), ours(pixels, ids, valid))


def test_logit_scale_starts_at_ln_1_over_0_07_and_is_clamped_at_ln_100():
    """Invariant (Radford et al. §2.5; open_clip): init ln(1/0.07) = 2.6593; after clamping, <= ln 100 exactly."""
    model = CLIP(CLIPConfig())
    assert abs(model.logit_scale.item() - 2.6593) < 1e-4 and LOGIT_SCALE_INIT == pytest.approx(2.659260, abs=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    clamp_logit_scale(model)
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_MAX) and model.logit_scale.exp().item() == \
        pytest.approx(100.0, rel=1e-6)


def test_clip_loss_matches_hand_computed_value():
    """Invariant: for a 2x2 logit matrix the symmetric InfoNCE equals the written-out log-softmax average."""
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    lse = lambda row: torch.logsumexp(torch.tensor(row), 0).item()  # noqa: E731
    rows = (lse([2.0, 0.0]) - 2.0 + lse([1.0, 3.0]) - 3.0) / 2
    cols = (lse([2.0, 1.0]) - 2.0 + lse([0.0, 3.0]) - 3.0) / 2
    assert clip_loss(logits).item() == pytest.approx((rows + cols) / 2, abs=1e-6)


def test_mean_pooling_reads_the_mean_patch_token():
    """Invariant: pool="mean" gives post-LN(mean of the patch tokens), [CLS] excluded."""
    torch.manual_seed(0)
    tower = CLIP(CLIPConfig(vision=CLIPVisionConfig(pool="mean"))).visual
    x = torch.rand(2, 3, 32, 32)
    last = tower.hidden_states(x)[-1]
    torch.testing.assert_close(tower(x), tower.post_norm(last[:, 1:].mean(1)), atol=0, rtol=0)
