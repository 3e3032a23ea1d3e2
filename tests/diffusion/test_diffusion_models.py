"""Parity of frontierkit.diffusion.models with diffusers (the oracle) on tiny random configs, weights read
from folders written by diffusers' save_pretrained: UNet2DConditionModel (SD-style, pixel class-conditional,
SDXL-style), AutoencoderKL and ControlNetModel, all within 1e-5; plus config checks and gradient flow."""
from __future__ import annotations

import pytest
import torch

from frontierkit.diffusion.convert import from_diffusers
from frontierkit.diffusion.models import (AutoencoderKL, ControlNetConfig, ControlNetModel, UNet2DConditionModel,
                                          UNetConfig, VAEConfig)
from frontierkit.errors import CheckpointError, ConfigError

diffusers = pytest.importorskip("diffusers")

TOL = 1e-5

SD_TINY = dict(sample_size=16, in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64), layers_per_block=2,
               cross_attention_dim=24, attention_head_dim=(2, 4), norm_num_groups=8)
PIXEL_CLASS = dict(sample_size=14, in_channels=1, out_channels=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2D",
                   block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, num_class_embeds=10,
                   freq_shift=1, flip_sin_to_cos=False)
SDXL_TINY = dict(sample_size=16, in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(32, 64), layers_per_block=2,
                 cross_attention_dim=32, attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2),
                 norm_num_groups=8, use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=8, projection_class_embeddings_input_dim=16 + 6 * 8)
VAE_TINY = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1,
                latent_channels=4, norm_num_groups=8, sample_size=32)


def perturbed(model: torch.nn.Module, seed: int, scale: float = 0.02) -> torch.nn.Module:
    """Add seeded noise to every parameter (so zero-initialised layers are exercised too); eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def roundtrip(ref: torch.nn.Module, tmp_path, name: str) -> torch.nn.Module:
    """diffusers model -> save_pretrained folder -> from_diffusers."""
    ref.save_pretrained(tmp_path / name)
    return from_diffusers(tmp_path / name)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def sd_pair(tmp_path_factory):
    torch.manual_seed(0)
    ref = perturbed(diffusers.UNet2DConditionModel(**SD_TINY), 1)
    return ref, roundtrip(ref, tmp_path_factory.mktemp("sd"), "unet")


def test_unet_sd_tiny_matches_diffusers_1e5(sd_pair):
    """SD-style UNet2DConditionModel (cross-attention, conv projections) vs diffusers: ≤ 1e-5, per-sample t."""
    ref, ours = sd_pair
    assert isinstance(ours, UNet2DConditionModel)
    g = torch.Generator().manual_seed(2)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 24, generator=g)
    for t in (torch.tensor([10, 500]), 999, torch.tensor(3.0)):
        with torch.no_grad():
            a, b = ref(x, t, c).sample, ours(x, t, c)
        assert b.shape == (2, 4, 16, 16)
        assert max_diff(a, b) <= TOL, t


def test_unet_encoder_attention_mask_matches_diffusers_1e5(sd_pair):
    """encoder_attention_mask (1 real token, 0 padding) vs diffusers' (its -10000 bias): ≤ 1e-5; the values of
    masked text tokens then do not change the output."""
    ref, ours = sd_pair
    g = torch.Generator().manual_seed(16)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 24, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    other = c.clone()
    other[1, 4:] = torch.randn(3, 24, generator=g)
    with torch.no_grad():
        a = ref(x, 20, c, encoder_attention_mask=mask).sample
        b = ours(x, 20, c, encoder_attention_mask=mask)
        b2 = ours(x, 20, other, encoder_attention_mask=mask)
        unmasked = ours(x, 20, c)
    assert max_diff(a, b) <= TOL
    assert max_diff(b, b2) <= TOL and max_diff(b[1], unmasked[1]) > 1e-4


def test_unet_pixel_class_conditional_matches_diffusers_1e5(tmp_path):
    """Pixel-space class-conditional DDPM UNet (no cross-attention, encoder_hidden_states=None, UNetMidBlock2D,
    odd 14x14 size, freq_shift=1) vs diffusers: ≤ 1e-5; the class label changes the output."""
    torch.manual_seed(0)
    ref = perturbed(diffusers.UNet2DConditionModel(**PIXEL_CLASS), 3)
    ours = roundtrip(ref, tmp_path, "pixel")
    g = torch.Generator().manual_seed(4)
    x, t, y = torch.randn(3, 1, 14, 14, generator=g), torch.tensor([1, 300, 999]), torch.tensor([0, 3, 9])
    with torch.no_grad():
        a, b = ref(x, t, None, class_labels=y).sample, ours(x, t, None, class_labels=y)
        other = ours(x, t, None, class_labels=(y + 1) % 10)
    assert max_diff(a, b) <= TOL
    assert max_diff(b, other) > 1e-3
    with pytest.raises(ValueError, match="class_labels"):
        ours(x, t)


def test_unet_sdxl_text_time_matches_diffusers_1e5(tmp_path):
    """SDXL-style UNet (addition_embed_type='text_time' micro-conditioning, transformer_layers_per_block (1, 2),
    linear projections) vs diffusers: ≤ 1e-5; time_ids change the output."""
    torch.manual_seed(0)
    ref = perturbed(diffusers.UNet2DConditionModel(**SDXL_TINY), 5)
    ours = roundtrip(ref, tmp_path, "sdxl")
    g = torch.Generator().manual_seed(6)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 32, generator=g)
    ids = torch.tensor([[32.0, 32, 0, 0, 32, 32], [64, 48, 4, 2, 32, 32]])
    cond = {"text_embeds": torch.randn(2, 16, generator=g), "time_ids": ids}
    with torch.no_grad():
        a, b = ref(x, 999, c, added_cond_kwargs=cond).sample, ours(x, 999, c, added_cond_kwargs=cond)
        moved = ours(x, 999, c, added_cond_kwargs={**cond, "time_ids": ids + 8})
    assert max_diff(a, b) <= TOL
    assert max_diff(b, moved) > 1e-4
    assert len(ours.down_blocks[1].attentions[0].transformer_blocks) == 2
    with pytest.raises(ValueError, match="text_time"):
        ours(x, 999, c)


def test_vae_matches_diffusers_1e5(tmp_path):
    """AutoencoderKL vs diffusers: posterior mean, logvar, std, seeded sample, KL and decode ≤ 1e-5."""
    torch.manual_seed(0)
    ref = perturbed(diffusers.AutoencoderKL(**VAE_TINY), 7)
    ours = roundtrip(ref, tmp_path, "vae")
    assert isinstance(ours, AutoencoderKL) and ours.cfg.scaling_factor == pytest.approx(0.18215)
    g = torch.Generator().manual_seed(8)
    x, z = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.randn(2, 4, 16, 16, generator=g)
    with torch.no_grad():
        pa, pb = ref.encode(x).latent_dist, ours.encode(x)
        assert pb.mean.shape == (2, 4, 16, 16)
        for name in ("mean", "logvar", "std"):
            assert max_diff(getattr(pa, name), getattr(pb, name)) <= TOL, name
        assert max_diff(pa.kl(), pb.kl()) <= TOL * max(1.0, pa.kl().abs().max().item())
        sa = pa.sample(torch.Generator().manual_seed(9))
        sb = pb.sample(torch.Generator().manual_seed(9))
        assert max_diff(sa, sb) <= TOL
        assert max_diff(ref.decode(z).sample, ours.decode(z)) <= TOL
        assert max_diff(ref(x).sample, ours(x)) <= TOL


def test_fresh_controlnet_leaves_unet_unchanged(sd_pair):
    """ControlNetModel.from_unet (ours): zero convolutions give zero residuals, so the UNet output is unchanged
    (Zhang et al. 2023 §3.1) exactly; the encoder is a copy of the UNet's."""
    _, unet = sd_pair
    torch.manual_seed(0)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)).eval()
    assert torch.equal(net.down_blocks[0].attentions[0].proj_in.weight,
                       unet.down_blocks[0].attentions[0].proj_in.weight)
    g = torch.Generator().manual_seed(10)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 24, generator=g)
    cond = torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        down, mid = net(x, torch.tensor([5, 50]), c, cond)
        plain = unet(x, torch.tensor([5, 50]), c)
        ctrl = unet(x, torch.tensor([5, 50]), c, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid)
    assert len(down) == 6 and all(d.abs().max() == 0 for d in down) and mid.abs().max() == 0
    assert torch.equal(plain, ctrl)


def test_controlnet_matches_diffusers_1e5(sd_pair, tmp_path):
    """diffusers' ControlNetModel.from_unet with its zero convolutions re-initialised randomly, read by
    from_diffusers: residuals ≤ 1e-5 for conditioning_scale 0.7 with and without guess mode, and the UNet fed
    these residuals matches diffusers' UNet fed diffusers' (≤ 1e-5)."""
    ref_unet, unet = sd_pair
    torch.manual_seed(0)
    ref = diffusers.ControlNetModel.from_unet(ref_unet, conditioning_embedding_out_channels=(8, 16)).eval()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                                "controlnet_cond_embedding.conv_out")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    ours = roundtrip(ref, tmp_path, "controlnet")
    assert isinstance(ours, ControlNetModel)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 24, generator=g)
    cond = torch.rand(2, 3, 32, 32, generator=g)
    t = torch.tensor([3, 40])
    with torch.no_grad():
        for guess in (False, True):
            da, ma = ref(x, t, c, cond, conditioning_scale=0.7, guess_mode=guess, return_dict=False)
            db, mb = ours(x, t, c, cond, conditioning_scale=0.7, guess_mode=guess)
            assert len(da) == len(db) == 6
            assert max(max_diff(p, q) for p, q in zip(da, db)) <= TOL and max_diff(ma, mb) <= TOL
            assert mb.abs().max() > 1e-3
        ua = ref_unet(x, t, c, down_block_additional_residuals=da, mid_block_additional_residual=ma).sample
        ub = unet(x, t, c, down_block_additional_residuals=db, mid_block_additional_residual=mb)
        assert max_diff(ua, ub) <= TOL and max_diff(ub, unet(x, t, c)) > 1e-3


def test_unet_gradients_reach_every_parameter(sd_pair):
    """Training needs gradients: a loss on the SD-style UNet's output gives a finite, non-zero gradient to every
    parameter (with ControlNet residuals also to the ControlNet's)."""
    _, unet = sd_pair
    torch.manual_seed(0)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    perturbed(net, 13).train()
    unet.train()
    g = torch.Generator().manual_seed(14)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 24, generator=g)
    cond = torch.rand(2, 3, 32, 32, generator=g)
    down, mid = net(x, torch.tensor([5, 50]), c, cond)
    out = unet(x, torch.tensor([5, 50]), c, down_block_additional_residuals=down, mid_block_additional_residual=mid)
    out.pow(2).mean().backward()
    for name, p in list(unet.named_parameters()) + [("cn." + n, p) for n, p in net.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    unet.zero_grad()
    unet.eval()


def test_unet_gradients_match_diffusers_1e5(sd_pair):
    """The SD-style UNet's parameter gradients of a loss on ε equal diffusers' (names mapped by convert), ≤ 1e-5."""
    from frontierkit.diffusion.convert import state_to_ours
    ref, ours = sd_pair
    g = torch.Generator().manual_seed(15)
    x, c = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 24, generator=g)
    for m in (ref, ours):
        m.zero_grad(set_to_none=True)
    ref(x, torch.tensor([5, 50]), c).sample.pow(2).mean().backward()
    ours(x, torch.tensor([5, 50]), c).pow(2).mean().backward()
    theirs = state_to_ours({n: p.grad for n, p in ref.named_parameters()})
    for name, p in ours.named_parameters():
        assert max_diff(p.grad, theirs[name]) <= TOL, name
    for m in (ref, ours):
        m.zero_grad(set_to_none=True)


def test_config_from_dict_reads_diffusers_keys_and_refuses_unsupported():
    """UNetConfig.from_dict drops diffusers bookkeeping and inert keys, refuses features we lack with a
    one-line ConfigError; to_dict round-trips; the head-count naming of attention_head_dim is diffusers'."""
    d = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.42.1", **SD_TINY,
         "class_embed_type": None, "only_cross_attention": [False, False], "resnet_time_scale_shift": "default"}
    cfg = UNetConfig.from_dict(d)
    assert cfg.attention_head_dim == (2, 4) and UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert UNet2DConditionModel(cfg).down_blocks[0].attentions[0].transformer_blocks[0].attn.n_heads == 2
    for key, value in (("class_embed_type", "timestep"), ("time_embedding_type", "fourier"),
                       ("only_cross_attention", True), ("down_block_types", ["SimpleCrossAttnDownBlock2D"] * 2)):
        with pytest.raises(ConfigError, match=key) as e:
            UNetConfig.from_dict({**d, key: value})
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="norm_num_groups"):
        UNetConfig.from_dict({**d, "norm_num_groups": 5})
    with pytest.raises(ConfigError, match="_class_name"):
        VAEConfig.from_dict(d)
    with pytest.raises(ConfigError, match="cross_attention_dim"):
        UNetConfig(cross_attention_dim=None)
    assert ControlNetConfig.from_dict({**{k: v for k, v in d.items() if "up_block" not in k and k not in
                                          ("sample_size", "out_channels")}, "_class_name": "ControlNetModel"})


def test_from_diffusers_refuses_wrong_folders(tmp_path, sd_pair):
    """A missing folder, a pipeline root, a folder without safetensors and a foreign class name each give one
    CheckpointError line naming the fix."""
    ref, _ = sd_pair
    with pytest.raises(CheckpointError, match="not a folder"):
        from_diffusers(tmp_path / "nope")
    (tmp_path / "pipe" / "unet").mkdir(parents=True)
    (tmp_path / "pipe" / "model_index.json").write_text("{}")
    (tmp_path / "pipe" / "unet" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="pipeline folder.*unet"):
        from_diffusers(tmp_path / "pipe")
    ref.save_pretrained(tmp_path / "bin", safe_serialization=False)
    with pytest.raises(CheckpointError, match="safetensors"):
        from_diffusers(tmp_path / "bin")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(CheckpointError, match="UNet2DModel"):
        from_diffusers(tmp_path / "other")
