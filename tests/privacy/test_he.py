"""CKKS homomorphic encryption through TenSEAL: encrypted inference equals the plaintext model, the server's
context holds no secret key, too-shallow presets are refused, encrypted aggregation equals the plain sum."""
import pytest
import torch

from frontierkit.errors import ConfigError
from frontierkit.privacy.he import PolyMLP, check_depth, fit_plaintext

ts = pytest.importorskip("tenseal", reason="the he extra: pip install frontierkit[he]")


@pytest.fixture(scope="module")
def digits():
    from frontierkit.vision import VisionDataConfig, load_data
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    return x.flatten(1), y, xt.flatten(1), yt


@pytest.mark.parametrize("hidden,preset,rows", [(0, "depth1", 4), (16, "depth3", 2)], ids=["logreg", "poly_mlp"])
def test_encrypted_inference_matches_the_plaintext_model(digits, hidden, preset, rows):
    """Client encrypts [x, 1], server evaluates with the public context, client decrypts: logits equal the
    plaintext model's to 0.05 (CKKS is approximate; measured ~5e-3) and the predictions are identical."""
    from frontierkit.privacy.he import encrypted_inference
    torch.set_num_threads(1)
    x, y, xt, _ = digits
    model = fit_plaintext(PolyMLP(hidden=hidden), x, y, steps=150)
    res = encrypted_inference(model, xt[:rows], preset)
    assert res.max_abs_error < 0.05, res.max_abs_error
    assert res.same_predictions == 1.0


def test_a_preset_too_shallow_for_the_model_is_refused():
    """The x² MLP needs depth 3 (Linear, square, Linear): depth1 fails naming the presets that fit."""
    with pytest.raises(ConfigError, match="depth3"):
        check_depth(PolyMLP(hidden=8), "depth1")


def test_the_server_context_has_no_secret_key():
    """public_context() serialises without the secret key: the server can compute but not decrypt; the key
    holder decrypts the server's result (CKKS noise is unseeded: 40-bit scale, tolerance 1e-4, measured ~1e-7)."""
    from frontierkit.privacy.he import make_context, public_context
    client = make_context("depth2")
    server = ts.context_from(public_context(client))
    assert client.is_private() and not server.is_private()
    enc = ts.ckks_vector_from(server, ts.ckks_vector(client, [1.0, 2.0]).serialize()) * 2.0
    with pytest.raises(Exception):
        enc.decrypt()
    assert abs(ts.ckks_vector_from(client, enc.serialize()).decrypt()[0] - 2.0) < 1e-4


def test_encrypted_aggregation_equals_plain_fedavg():
    """The server sums CKKS ciphertexts of n_k·w_k (5,000 weights, 2 ciphertext chunks each): FedAvg's
    weighted mean to 1e-5."""
    from frontierkit.privacy.federated import weighted_average
    from frontierkit.privacy.he import encrypted_weighted_average
    torch.manual_seed(0)
    states = [{"w": torch.randn(50, 100)} for _ in range(3)]
    sizes = [30.0, 10.0, 60.0]
    torch.testing.assert_close(encrypted_weighted_average(states, sizes, 0)["w"],
                               weighted_average(states, sizes)["w"], atol=1e-5, rtol=0)
