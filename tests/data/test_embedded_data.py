"""Embedded data: deterministic splits, cached BPE, digits and shapes formats, batch sources."""
import pytest
import torch

from frontierkit.data import TensorBatches, TokenBatches
from frontierkit.data.digits import load_digits
from frontierkit.data.pycorpus import encode_corpus, load_text, stdlib_files, train_tokenizer
from frontierkit.data.shapes import COLORS, POSITIONS, SHAPES, SIZES, make_shapes
from frontierkit.errors import DataError


def test_pycorpus_is_big_deterministic_and_split_by_file():
    assert len(stdlib_files()) > 300
    train, val = load_text("train", max_chars=300_000), load_text("val", max_chars=300_000)
    assert len(train) == 300_000 and len(val) > 50_000
    assert train == load_text("train", max_chars=300_000)
    assert val[:2000] not in train


def test_bpe_tokenizer_round_trips_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIERKIT_CACHE", str(tmp_path))
    tok = train_tokenizer(300, max_chars=200_000)
    assert tok.get_vocab_size() == 300
    assert list(tmp_path.glob("pycorpus-bpe-300-200000.json"))
    text = "def f(x):\n    return x ** 2  # ünïcode ✓\n"
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text and len(ids) < len(text.encode())
    assert train_tokenizer(300, max_chars=200_000).encode(text).ids == ids
    ids = encode_corpus(tok, "val", max_chars=50_000)
    assert ids.dtype == torch.int32 and int(ids.max()) < 300
    with pytest.raises(DataError, match="at least 257"):
        train_tokenizer(100, max_chars=10_000)


def test_digits_split_is_stratified_and_disjoint():
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    assert x.shape == (1347, 1, 8, 8) and xt.shape == (450, 1, 8, 8)
    assert 0 <= x.min() and x.max() <= 1
    assert torch.bincount(yt).min() >= 44                       # every class ~25% held out
    flat = {tuple(r.tolist()) for r in x.flatten(1)}
    overlap = sum(tuple(r.tolist()) in flat for r in xt.flatten(1))
    assert overlap <= 3                                          # sklearn digits has a few duplicates
    assert load_digits("train", upscale=2)[0].shape == (1347, 1, 16, 16)
    with pytest.raises(DataError):
        load_digits("validation")


def test_shapes_are_deterministic_and_captions_match_labels():
    a, b = make_shapes(20, seed=3), make_shapes(20, seed=3)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, make_shapes(20, seed=4).images)
    for i in range(20):
        shape, color = SHAPES[a.labels["shape"][i]], list(COLORS)[a.labels["color"][i]]
        size, pos = SIZES[a.labels["size"][i]], POSITIONS[a.labels["position"][i]]
        assert a.captions[i].startswith(f"a {size} {color} {shape}") and a.captions[i].endswith(pos)
        assert dict(a.qa[i])["what color is the shape?"] == color
        # the shape's pixels carry its colour
        rgb = torch.tensor(COLORS[color])
        assert ((a.images[i] - rgb[:, None, None]).abs().sum(0) < 1e-6).sum() > 10


def test_batch_sources_are_pure_functions_of_the_index():
    x, y = torch.arange(100.0)[:, None], torch.arange(100)
    src = TensorBatches(x, y, batch_size=10, seed=1)
    assert torch.equal(src.batch(7)[1], TensorBatches(x, y, batch_size=10, seed=1).batch(7)[1])
    epoch = torch.cat([src.batch(i)[1] for i in range(10)])
    assert sorted(epoch.tolist()) == list(range(100))           # one epoch sees every sample once
    r0, r1 = src.batch(3, rank=0, world=2)[1], src.batch(3, rank=1, world=2)[1]
    assert torch.equal(torch.cat([r0, r1]), src.batch(3)[1])    # ranks shard the global batch
    toks = TokenBatches(torch.arange(1000), batch_size=4, seq_len=16, seed=0)
    xb, yb = toks.batch(5)
    assert xb.shape == (4, 16) and torch.equal(xb[:, 1:], yb[:, :-1]) and torch.equal(xb + 1, yb)
