"""Seeded pipelines vs diffusers' pipelines (oracle) on the same tiny random weights, ≤ 1e-4 on images.

diffusers UNet2DConditionModel / AutoencoderKL / ControlNetModel are built tiny and random, saved with
``save_pretrained`` and loaded into ours with ``frontierkit.diffusion.from_diffusers``; a tiny random
transformers CLIPTextModel gives the prompt embeddings both pipelines receive (``prompt_embeds``).
"""
from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from frontierkit.config import ConfigError  # noqa: E402
from frontierkit.diffusion import from_diffusers, schedulers  # noqa: E402
from frontierkit.diffusion.pipelines import (StableDiffusionPipeline, classifier_free_guidance,  # noqa: E402
                                             rescale_guidance)

TOL = 1e-4
SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
             clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random diffusers UNet / VAE / ControlNet saved to disk + CLIP text embeddings."""
    root = tmp_path_factory.mktemp("sd")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=8)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                  latent_channels=4, norm_num_groups=8, sample_size=16)
    cn = diffusers.ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    with torch.no_grad():                        # re-initialise the zero convolutions so the control matters
        for m in list(cn.controlnet_down_blocks) + [cn.controlnet_mid_block]:
            m.weight.normal_(0, 0.1)
    for name, m in (("unet", unet), ("vae", vae), ("controlnet", cn)):
        m.eval().save_pretrained(root / name)
    te = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, projection_dim=32)).eval()
    ids = torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        emb = te(ids).last_hidden_state                       # (4, 16, 32)
    return dict(root=root, unet=unet, vae=vae, cn=cn, cond=emb[:2], uncond=emb[2:])


def _ours(tiny, sched_name, controlnet=False):
    r = tiny["root"]
    sched = getattr(schedulers, sched_name).from_config(SCHED)
    return StableDiffusionPipeline(unet=from_diffusers(r / "unet"), vae=from_diffusers(r / "vae"), scheduler=sched,
                                   controlnet=from_diffusers(r / "controlnet") if controlnet else None)



def _pipe(tiny, sched_name, cls="StableDiffusionPipeline", controlnet=False):
    kw = dict(controlnet=tiny["cn"]) if controlnet else {}
    p = getattr(diffusers, cls)(unet=tiny["unet"], vae=tiny["vae"], text_encoder=None, tokenizer=None,
                                scheduler=getattr(diffusers, sched_name).from_config(SCHED), safety_checker=None,
                                feature_extractor=None, requires_safety_checker=False, **kw)
    p.set_progress_bar_config(disable=True)
    return p


def _args(tiny, **kw):
    return {**dict(prompt_embeds=tiny["cond"], negative_prompt_embeds=tiny["uncond"], num_inference_steps=2,
                   guidance_scale=7.5, output_type="pt"), **kw}


@pytest.mark.parametrize("sched_name", ["DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"])
def test_text2img_2_steps_matches_diffusers_pipeline(tiny, sched_name):
    """Seeded 2-step text-to-image with CFG s = 7.5 and guidance_rescale 0.7 = diffusers StableDiffusionPipeline (≤ 1e-4)."""
    ours = _ours(tiny, sched_name)(**_args(tiny, guidance_rescale=0.7,
                                          generator=torch.Generator().manual_seed(42)))
    theirs = _pipe(tiny, sched_name)(**_args(tiny, guidance_rescale=0.7,
                                             generator=torch.Generator().manual_seed(42))).images
    assert ours.images.shape == theirs.shape == (2, 3, 16, 16)
    assert (ours.images - theirs).abs().max() <= TOL


def test_img2img_matches_diffusers_pipeline(tiny):
    """SDEdit img2img, strength 0.6 over 5 DDIM steps = diffusers StableDiffusionImg2ImgPipeline (≤ 1e-4)."""
    img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    kw = _args(tiny, image=img, strength=0.6, num_inference_steps=5)
    ours = _ours(tiny, "DDIMScheduler")(**kw, generator=torch.Generator().manual_seed(7)).images
    theirs = _pipe(tiny, "DDIMScheduler", "StableDiffusionImg2ImgPipeline")(
        **kw, generator=torch.Generator().manual_seed(7)).images
    assert (ours - theirs).abs().max() <= TOL


@pytest.mark.parametrize("guess_mode", [False, True])
def test_controlnet_matches_diffusers_pipeline(tiny, guess_mode):
    """ControlNet (conditioning scale 0.8, guess mode on/off) = diffusers StableDiffusionControlNetPipeline (≤ 1e-4)."""
    ctrl = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    ours = _ours(tiny, "DDIMScheduler", controlnet=True)(
        **_args(tiny, control_image=ctrl, controlnet_conditioning_scale=0.8, guess_mode=guess_mode,
                generator=torch.Generator().manual_seed(9))).images
    theirs = _pipe(tiny, "DDIMScheduler", "StableDiffusionControlNetPipeline", controlnet=True)(
        **_args(tiny, image=ctrl, controlnet_conditioning_scale=0.8, guess_mode=guess_mode,
                generator=torch.Generator().manual_seed(9))).images
    assert (ours - theirs).abs().max() <= TOL
    plain = _ours(tiny, "DDIMScheduler")(**_args(tiny, generator=torch.Generator().manual_seed(9))).images
    assert (ours - plain).abs().max() > 1e-3          # the control image really changes the result


def test_guidance_formulas():
    """CFG eq. 6 at s = 1 returns ε_c; rescale φ = 1 gives std(ε̃) = std(ε_c) per sample (Lin et al. 2023 eq. 15-16)."""
    g = torch.Generator().manual_seed(0)
    eu, ec = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g)
    assert torch.allclose(classifier_free_guidance(eu, ec, 1.0), ec, atol=1e-6)
    r = rescale_guidance(classifier_free_guidance(eu, ec, 7.5), ec, 1.0)
    assert torch.allclose(r.std(dim=(1, 2, 3)), ec.std(dim=(1, 2, 3)), atol=1e-5)


def test_pipeline_bad_input_is_one_line_error(tiny):
    """CFG without negative embeddings and no text encoder → ConfigError, not a traceback deep in the UNet."""
    pipe = _ours(tiny, "DDIMScheduler")
    with pytest.raises(ConfigError, match="negative_prompt_embeds"):
        pipe(prompt_embeds=tiny["cond"], num_inference_steps=1)
    with pytest.raises(ConfigError, match="controlnet"):
        pipe(prompt_embeds=tiny["cond"], negative_prompt_embeds=tiny["uncond"], num_inference_steps=1,
             control_image=torch.zeros(2, 3, 16, 16))


@pytest.fixture(scope="module")
def tiny_xl(tmp_path_factory):
    """A tiny SDXL-style UNet (text_time additions, two 32-wide text encoders concatenated to 64)."""
    root = tmp_path_factory.mktemp("sdxl")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(2, 4), norm_num_groups=8, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * 6 + 32,
        transformer_layers_per_block=(1, 2), use_linear_projection=True)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                  latent_channels=4, norm_num_groups=8, sample_size=16)
    unet.eval().save_pretrained(root / "unet")
    vae.eval().save_pretrained(root / "vae")
    g = torch.Generator().manual_seed(2)
    enc1 = lambda p: (torch.randn(len(p), 7, 32, generator=g), None)  # noqa: E731  stand-ins for 2 CLIP towers
    enc2 = lambda p: (torch.randn(len(p), 7, 32, generator=g), torch.randn(len(p), 32, generator=g))  # noqa: E731
    from frontierkit.diffusion.pipelines import DualTextEncoder
    both = DualTextEncoder(enc1, enc2)
    cond, pooled = both(["a", "b"])
    uncond, neg_pooled = both(["", ""])
    return dict(root=root, unet=unet, vae=vae, cond=cond, uncond=uncond, pooled=pooled, neg_pooled=neg_pooled)


def test_sdxl_micro_conditioning_matches_diffusers_pipeline(tiny_xl):
    """SDXL text_time conditioning (pooled embedding + Fourier time_ids of original size / crop / target size,
    two text encoders concatenated) = diffusers StableDiffusionXLPipeline, 2 Euler steps, s = 5 (≤ 1e-4)."""
    r = tiny_xl["root"]
    kw = dict(prompt_embeds=tiny_xl["cond"], negative_prompt_embeds=tiny_xl["uncond"],
              pooled_prompt_embeds=tiny_xl["pooled"], negative_pooled_prompt_embeds=tiny_xl["neg_pooled"],
              num_inference_steps=2, guidance_scale=5.0, output_type="pt", original_size=(24, 20),
              crops_coords_top_left=(2, 1), target_size=(16, 16))
    cfg = {**SCHED, "timestep_spacing": "trailing", "steps_offset": 0}
    ours = StableDiffusionPipeline(unet=from_diffusers(r / "unet"), vae=from_diffusers(r / "vae"),
                                   scheduler=schedulers.EulerDiscreteScheduler.from_config(cfg))(
        **kw, generator=torch.Generator().manual_seed(4)).images
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=tiny_xl["vae"], text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
        unet=tiny_xl["unet"], scheduler=diffusers.EulerDiscreteScheduler.from_config(cfg))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(**kw, generator=torch.Generator().manual_seed(4)).images
    assert (ours - theirs).abs().max() <= TOL
    moved = StableDiffusionPipeline(unet=from_diffusers(r / "unet"), vae=from_diffusers(r / "vae"),
                                    scheduler=schedulers.EulerDiscreteScheduler.from_config(cfg))(
        **{**kw, "original_size": (64, 64)}, generator=torch.Generator().manual_seed(4)).images
    assert (moved - ours).abs().max() > 1e-4           # the size conditioning reaches the UNet
