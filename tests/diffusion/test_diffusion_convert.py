"""to_diffusers / from_diffusers round trips (oracle: diffusers' from_pretrained, ≤ 1e-6) and the state-dict name
mapping, for a kit UNet (pixel, class-conditional, no cross-attention), an SD-style UNet, a VAE and a ControlNet;
plus the registry hooks in frontierkit.diffusion.models.kinds."""
from __future__ import annotations

import json

import pytest
import torch

from frontierkit.diffusion.convert import (from_diffusers, key_to_diffusers, key_to_ours, state_to_ours,
                                          to_diffusers)
from frontierkit.diffusion.models import (AutoencoderKL, ControlNetModel, UNet2DConditionModel, UNetConfig,
                                          VAEConfig)
from frontierkit.diffusion.models import kinds

diffusers = pytest.importorskip("diffusers")

TOL = 1e-6


def seeded(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn from a seeded N(0, 0.05²) (so zero-initialised layers are not trivially equal)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


PIXEL = UNetConfig(sample_size=16, in_channels=1, out_channels=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2D", cross_attention_dim=None,
                   block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, num_class_embeds=10)
SD = UNetConfig(sample_size=8, block_out_channels=(32, 64), attention_head_dim=(2, 4), cross_attention_dim=16,
                norm_num_groups=8, transformer_layers_per_block=(1, 2))


def test_pixel_unet_to_diffusers_round_trip_1e6(tmp_path):
    """Kit pixel class-conditional UNet -> to_diffusers -> diffusers from_pretrained: same output ≤ 1e-6; read
    back by from_diffusers: identical weights and config (cross_attention_dim None survives diffusers' int)."""
    ours = seeded(UNet2DConditionModel(PIXEL), 0)
    to_diffusers(ours, tmp_path / "unet")
    assert json.loads((tmp_path / "unet" / "config.json").read_text())["_class_name"] == "UNet2DConditionModel"
    ref = diffusers.UNet2DConditionModel.from_pretrained(tmp_path / "unet").eval()
    g = torch.Generator().manual_seed(1)
    x, t, y = torch.randn(2, 1, 16, 16, generator=g), torch.tensor([4, 900]), torch.tensor([1, 8])
    with torch.no_grad():
        assert (ref(x, t, None, class_labels=y).sample - ours(x, t, None, class_labels=y)).abs().max() <= TOL
    back = from_diffusers(tmp_path / "unet")
    assert back.cfg == PIXEL
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), ours.state_dict().values()))


def test_sd_unet_vae_controlnet_to_diffusers_round_trip_1e6(tmp_path):
    """SD-style UNet (cross-attention, GEGLU halves, 2 transformer layers), VAE and ControlNet written by
    to_diffusers and loaded by diffusers' from_pretrained give our outputs ≤ 1e-6."""
    g = torch.Generator().manual_seed(2)
    unet = seeded(UNet2DConditionModel(SD), 3)
    cn = seeded(ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)), 4)
    vae = seeded(AutoencoderKL(VAEConfig(block_out_channels=(16, 32), norm_num_groups=8)), 5)
    for name, m in (("unet", unet), ("cn", cn), ("vae", vae)):
        to_diffusers(m, tmp_path / name)
    x, c = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 5, 16, generator=g)
    cond = torch.rand(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        ref = diffusers.UNet2DConditionModel.from_pretrained(tmp_path / "unet").eval()
        assert (ref(x, 7, c).sample - unet(x, 7, c)).abs().max() <= TOL
        ref_cn = diffusers.ControlNetModel.from_pretrained(tmp_path / "cn").eval()
        da, ma = ref_cn(x, 7, c, cond, return_dict=False)
        db, mb = cn(x, 7, c, cond)
        assert max((a - b).abs().max() for a, b in zip(da, db)) <= TOL and (ma - mb).abs().max() <= TOL
        ref_vae = diffusers.AutoencoderKL.from_pretrained(tmp_path / "vae").eval()
        img = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
        assert (ref_vae.encode(img).latent_dist.mean - vae.encode(img).mean).abs().max() <= TOL
        assert (ref_vae.decode(x).sample - vae.decode(x)).abs().max() <= TOL


def test_from_diffusers_reads_sharded_and_fp16_variant_folders(tmp_path):
    """Folders saved with max_shard_size (an .index.json + shards) and variant="fp16" read into the same weights
    as diffusers' model (fp16: its values rounded to half), as a float32 module."""
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**SD.to_dict()).eval()
    want = {k: v.clone() for k, v in state_to_ours(ref.state_dict()).items()}
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    ref.half().save_pretrained(tmp_path / "half", variant="fp16", max_shard_size="300KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    for name, rounding in (("sharded", torch.float32), ("half", torch.float16)):
        got = from_diffusers(tmp_path / name).state_dict()
        assert all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k].to(rounding).float()) for k in want)


def test_state_dict_names_map_both_ways():
    """key_to_diffusers and key_to_ours are inverse on every key of a UNet, ControlNet and VAE; only attention
    keys are renamed."""
    unet = UNet2DConditionModel(SD)
    models = (unet, ControlNetModel.from_unet(unet), AutoencoderKL(VAEConfig(block_out_channels=(16, 32),
                                                                              norm_num_groups=8)))
    for m in models:
        for key in m.state_dict():
            assert key_to_ours(key_to_diffusers(key)) == key
            if "transformer_blocks" not in key and "mid_block.attentions" not in key:
                assert key_to_diffusers(key) == key
    assert key_to_diffusers("down_blocks.0.attentions.0.transformer_blocks.1.mlp.gate_up.weight") == \
        "down_blocks.0.attentions.0.transformer_blocks.1.ff.net.0.proj.weight"
    legacy = "encoder.mid_block.attentions.0.query.weight"
    assert key_to_ours(legacy) == "encoder.mid_block.attentions.0.attn.q_proj.weight"


def test_kinds_build_config_detect_and_load(tmp_path):
    """The registry hooks: build(config_of(m)) rebuilds the same architecture, detect recognises diffusers folders
    by _class_name, load_diffusers reads one."""
    unet = seeded(UNet2DConditionModel(SD), 6)
    again = kinds.build_unet(kinds.config_of(unet))
    assert again.cfg == unet.cfg and again.state_dict().keys() == unet.state_dict().keys()
    vae = AutoencoderKL(VAEConfig(block_out_channels=(16, 32), norm_num_groups=8))
    assert kinds.build_vae(kinds.config_of(vae)).cfg == vae.cfg
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    assert kinds.build_controlnet(kinds.config_of(cn)).cfg == cn.cfg
    to_diffusers(unet, tmp_path / "unet")
    meta = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert kinds.detect_unet(meta) and not kinds.detect_vae(meta) and not kinds.detect_controlnet(meta)
    loaded = kinds.load_diffusers(tmp_path / "unet", meta)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), unet.state_dict().values()))


def test_registry_saves_and_opens_ours_and_diffusers_folders(tmp_path):
    """frontierkit.models: save + open_model round-trips a kit UNet/ControlNet (kinds diffusion-unet, controlnet);
    a diffusers VAE folder is recognised as diffusion-vae and loaded; asking it for a UNet is one clear error."""
    from frontierkit import models
    from frontierkit.errors import CheckpointError
    unet = seeded(UNet2DConditionModel(PIXEL), 7)
    cn = seeded(ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)), 8)
    for name, m, kind in (("unet", unet, "diffusion-unet"), ("cn", cn, "controlnet")):
        models.save(m, tmp_path / name)
        loaded = models.open_model(tmp_path / name)
        assert loaded.kind.name == kind and loaded.model.cfg == m.cfg
        assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), m.state_dict().values()))
    vae = seeded(AutoencoderKL(VAEConfig(block_out_channels=(16, 32), norm_num_groups=8)), 9)
    diffusers.AutoencoderKL(**kinds.config_of(vae)).save_pretrained(tmp_path / "vae")
    opened = models.open_model(tmp_path / "vae")
    assert opened.kind.name == "diffusion-vae" and isinstance(opened.model, AutoencoderKL)
    with pytest.raises(CheckpointError, match="diffusion-vae"):
        models.open_model(tmp_path / "vae", kind="diffusion-unet")
