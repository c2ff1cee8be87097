import numpy as np
import pytest

from drivegpt.data.tokenizer import ActionTokenizer, ObsNormalizer


def test_meta_round_trip():
    tok = ActionTokenizer("meta")
    a = np.array([0, 1, 2, 3, 4, 1])
    np.testing.assert_array_equal(tok.decode(tok.encode(a)), a)
    with pytest.raises(ValueError):
        tok.encode(np.array([5]))


def test_accel_tokens_are_the_env_tokens():
    tok = ActionTokenizer()
    assert tok.kind == "accel" and tok.vocab_size == 42
    a = np.arange(42)
    np.testing.assert_array_equal(tok.encode(a), a)
    np.testing.assert_array_equal(tok.decode(a), a)
    with pytest.raises(ValueError, match="0..41"):
        tok.encode(np.array([42]))
    with pytest.raises(ValueError, match="valid: accel, meta, continuous"):
        ActionTokenizer("steer")


def test_continuous_bin_centres_are_exact():
    tok = ActionTokenizer("continuous", bins=9)
    assert tok.vocab_size == 81
    c = tok.centres
    np.testing.assert_allclose(c[4], 0.0, atol=1e-12)  # odd bins: zero is a centre
    grid = np.array([[x, y] for x in c for y in c], np.float32)
    tokens = tok.encode(grid)
    np.testing.assert_array_equal(tokens, np.arange(81))
    np.testing.assert_array_equal(tok.decode(tokens), grid)
    # any action decodes to its bin centre: error at most half a bin
    a = np.random.default_rng(0).uniform(-1, 1, size=(100, 2))
    assert np.abs(tok.decode(tok.encode(a)) - a).max() <= 1 / 9 + 1e-6
    np.testing.assert_array_equal(tok.encode(np.array([[1.0, -1.0]])), [8 * 9 + 0])


def test_normalizer_keeps_absent_rows_zero():
    obs = np.zeros((3, 2, 7), np.float32)
    obs[:, 0] = [1, 0.5, 0.1, 0.3, 0.0, 1.0, 0.0]
    obs[0, 1] = [1, 0.2, 0.3, -0.1, 0.0, 1.0, 0.0]
    norm = ObsNormalizer.fit(obs)
    x = norm(obs)
    assert np.all(x[1:, 1] == 0)  # absent vehicles
    assert np.all(x[:, 0, 0] == 1)  # presence untouched
