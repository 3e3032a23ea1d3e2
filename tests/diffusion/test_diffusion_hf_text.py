"""A whole diffusers Stable Diffusion pipeline folder (unet/, vae/, scheduler/, text_encoder/, tokenizer/) sampled
from prompts: ``pipeline_for(folder)`` reads the folder's own transformers CLIPTextModel + CLIP tokenizer through
the model registry (kind clip-text, tag text-encoder) and equals diffusers' StableDiffusionPipeline (oracle) on
prompt + negative prompt, 2 seeded DDIM steps, CFG 7.5, within 1e-4 on the images."""
from __future__ import annotations

import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from frontierkit.config import ConfigError  # noqa: E402
from frontierkit.diffusion.experiments import pipeline_for  # noqa: E402
from frontierkit.diffusion.text import RegistryTextEncoder  # noqa: E402

TOL = 1e-4
SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
             clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!,.'?-"
MERGES = ["t h", "th e</w>", "c a", "ca t</w>", "r e", "re d</w>", "b l", "bl u", "blu e</w>"]


def _tokenizer(folder):
    """A tiny CLIP BPE (characters, their </w> variants, a few merges, special tokens last), model_max_length 12."""
    folder.mkdir(parents=True)
    symbols = list(CHARS) + [c + "</w>" for c in CHARS] + ["".join(m.split()) for m in MERGES]
    vocab = {s: i for i, s in enumerate(symbols + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return transformers.CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                                      model_max_length=12), vocab


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """A diffusers StableDiffusionPipeline of tiny random parts, saved with save_pretrained; its tokenizer/ then
    rewritten as the hub's SD 1.x folders hold it."""
    root = tmp_path_factory.mktemp("sdtext")
    tok, vocab = _tokenizer(root / "vocab")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=8)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
        sample_size=16)
    te = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=12, eos_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|startoftext|>"]))
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet.eval(), vae=vae.eval(), text_encoder=te.eval(), tokenizer=tok,
        scheduler=diffusers.DDIMScheduler(**SCHED), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(root / "sd")
    tdir = root / "sd" / "tokenizer"                        # the hub's SD 1.x layout: vocab.json + merges.txt,
    (tdir / "tokenizer.json").unlink()                      # special tokens as {"content": ...} in a map file
    for f in ("vocab.json", "merges.txt"):
        (tdir / f).write_text((root / "vocab" / f).read_text())
    (tdir / "special_tokens_map.json").write_text(json.dumps(
        {k: {"content": "<|endoftext|>", "lstrip": False} for k in ("eos_token", "pad_token", "unk_token")}))
    return root / "sd", pipe


def test_pipeline_folder_prompts_match_diffusers_stable_diffusion(sd_folder):
    """Prompt + negative prompt through the folder's own text_encoder/ + tokenizer/, 2 DDIM steps, CFG 7.5, seeded
    = diffusers StableDiffusionPipeline(prompt=..., negative_prompt=..., output_type="pt") (≤ 1e-4)."""
    folder, pipe = sd_folder
    kw = dict(prompt=["The red CAT!", "a blue  cat, the end"], negative_prompt=["blurry", "the red"],
              num_inference_steps=2, guidance_scale=7.5, output_type="pt")
    ours = pipeline_for(folder, "DDIMScheduler")
    assert isinstance(ours.text_encoder, RegistryTextEncoder)
    assert ours.text_encoder.model.__class__.__name__ == "CLIPTextEncoder"
    got = ours(**kw, generator=torch.Generator().manual_seed(3)).images
    want = pipe(**kw, generator=torch.Generator().manual_seed(3)).images
    assert got.shape == want.shape == (2, 3, 16, 16)
    assert (got - want).abs().max() <= TOL
    other = ours(**{**kw, "prompt": ["the blue cat", "red"]}, generator=torch.Generator().manual_seed(3)).images
    assert (other - got).abs().max() > 1e-3                 # the prompt reaches the UNet


def test_pipeline_folder_text_encoder_of_wrong_width_is_refused(sd_folder, tmp_path):
    """A text_encoder/ whose hidden width differs from the UNet's cross_attention_dim: one ConfigError naming both."""
    import shutil
    folder, _ = sd_folder
    bad = tmp_path / "sd"
    shutil.copytree(folder, bad)
    shutil.rmtree(bad / "text_encoder")
    cfg = json.loads((folder / "text_encoder" / "config.json").read_text())
    transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=cfg["vocab_size"], hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=12, eos_token_id=cfg["eos_token_id"])).save_pretrained(
        bad / "text_encoder")
    with pytest.raises(ConfigError, match="width 16.*reads 32"):
        pipeline_for(bad, "DDIMScheduler")


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    """A diffusers StableDiffusionXLPipeline of tiny random parts saved with save_pretrained: text_encoder/ a
    CLIPTextModel (32 wide), text_encoder_2/ a CLIPTextModelWithProjection (32 wide, projection 16) whose
    tokenizer_2/ pads with "!" as SDXL's does; the UNet reads 64 = 32 + 32 and pools 16 + 6 · 8 time features."""
    root = tmp_path_factory.mktemp("sdxltext")
    tok, vocab = _tokenizer(root / "vocab")
    tok2 = transformers.CLIPTokenizer(vocab=str(root / "vocab" / "vocab.json"),
                                      merges=str(root / "vocab" / "merges.txt"), model_max_length=12, pad_token="!")
    torch.manual_seed(1)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(2, 4), norm_num_groups=8, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * 6 + 16, use_linear_projection=True)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
        sample_size=16)
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                num_attention_heads=4, max_position_embeddings=12, eos_token_id=vocab["<|endoftext|>"],
                bos_token_id=vocab["<|startoftext|>"])
    te = transformers.CLIPTextModel(transformers.CLIPTextConfig(**text))
    te2 = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**text, projection_dim=16))
    pipe = diffusers.StableDiffusionXLPipeline(
        unet=unet.eval(), vae=vae.eval(), text_encoder=te.eval(), text_encoder_2=te2.eval(), tokenizer=tok,
        tokenizer_2=tok2, scheduler=diffusers.EulerDiscreteScheduler.from_config(
            {**SCHED, "timestep_spacing": "trailing", "steps_offset": 0}),
        force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(root / "sdxl")
    return root / "sdxl", pipe


def test_sdxl_pipeline_folder_prompts_match_diffusers(sdxl_folder):
    """Both text encoders read from the folder (penultimate states concatenated, pooled from the second), with
    and without a negative prompt (SDXL's force_zeros_for_empty_prompt), 2 Euler steps, CFG 5, seeded =
    diffusers StableDiffusionXLPipeline (oracle) ≤ 1e-4; the folder's unet/ opens the same pipeline."""
    folder, pipe = sdxl_folder
    ours = pipeline_for(folder, "EulerDiscreteScheduler")
    assert ours.force_zeros_for_empty_prompt
    assert [type(e.model).__name__ for e in (ours.text_encoder.first, ours.text_encoder.second)] == \
        ["CLIPTextEncoder"] * 2
    base = dict(prompt=["The red CAT!", "a blue cat"], num_inference_steps=2, guidance_scale=5.0, output_type="pt")
    for kw in (dict(base, negative_prompt=["blurry", "the red"]), base):
        got = ours(**kw, generator=torch.Generator().manual_seed(5)).images
        want = pipe(**kw, generator=torch.Generator().manual_seed(5)).images
        assert got.shape == want.shape == (2, 3, 16, 16)
        assert (got - want).abs().max() <= TOL, kw.keys()
    via_unet = pipeline_for(folder / "unet", "EulerDiscreteScheduler")(
        **base, generator=torch.Generator().manual_seed(5)).images
    assert (via_unet - got).abs().max() == 0
    zeros_off = pipeline_for(folder, "EulerDiscreteScheduler")
    zeros_off.force_zeros_for_empty_prompt = False      # the rule matters: "" encoded is not zeros
    other = zeros_off(**base, generator=torch.Generator().manual_seed(5)).images
    assert (other - got).abs().max() > 1e-4


def test_sdxl_folder_without_its_first_text_encoder_is_refused(sdxl_folder, tmp_path):
    """text_encoder_2/ alone (an SDXL refiner's layout, whose time ids carry an aesthetic score) is a one-line
    ConfigError, not a silent single-encoder pipeline."""
    import shutil
    folder, _ = sdxl_folder
    shutil.copytree(folder, tmp_path / "xl")
    shutil.rmtree(tmp_path / "xl" / "text_encoder")
    with pytest.raises(ConfigError, match="no text_encoder/.*refiner") as err:
        pipeline_for(tmp_path / "xl", "EulerDiscreteScheduler")
    assert "\n" not in str(err.value)
