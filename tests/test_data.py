import gzip
import shutil

import numpy as np
import pytest

from nnlearn.data import (
    MnistNotFoundError,
    circle_data,
    grid,
    load_mnist,
    random_labels,
    spirals,
    xor_data,
)
from nnlearn.data import mnist as mnist_mod


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No NNLEARN_DATA and an empty private cache: nothing is found unless a test puts it there."""
    monkeypatch.delenv("NNLEARN_DATA", raising=False)
    monkeypatch.setattr(mnist_mod.pooch, "os_cache", lambda name: tmp_path / "cache")
    return tmp_path


def test_load_mnist_test_split(mnist_dir):
    X, y = load_mnist("test", root=mnist_dir, download=False)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).tolist()[:3] == [980, 1135, 1032]  # canonical test-split counts
    assert y[:5].tolist() == [7, 2, 1, 0, 4]


def test_load_mnist_digits_scale_limit(mnist_dir):
    X, y = load_mnist(
        root=mnist_dir, digits=[1, 7], scale=(1 / 256, 1.0), limit=50, flatten=False, download=False
    )
    assert X.shape == (50, 28, 28) and set(np.unique(y)) <= {1, 7}
    assert np.isclose(X.min(), 1 / 256) and np.isclose(X.max(), 1.0)


def test_found_through_env(monkeypatch, mnist_dir):
    monkeypatch.setenv("NNLEARN_DATA", str(mnist_dir.parent))
    assert len(load_mnist(download=False)[1]) == 10000


def test_missing_offline_names_files_and_folders(isolated):
    with pytest.raises(MnistNotFoundError) as err:
        load_mnist(root=isolated / "nowhere", download=False)
    msg = str(err.value)
    assert (
        "t10k-images-idx3-ubyte.gz" in msg
        and str(isolated / "nowhere") in msg
        and "NNLEARN_DATA" in msg
    )


def test_download_failure_is_clear_and_leaves_nothing(isolated, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(mnist_mod.pooch, "retrieve", refuse)
    with pytest.raises(MnistNotFoundError, match="download failed"):
        load_mnist(download=True)
    assert not any((isolated / "cache").rglob("*.gz"))


def test_download_uses_pooch_with_md5(isolated, monkeypatch, mnist_dir):
    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append((url, known_hash))
        path.mkdir(parents=True, exist_ok=True)
        shutil.copy(mnist_dir / fname, path / fname)
        return str(path / fname)

    monkeypatch.setattr(mnist_mod.pooch, "retrieve", fake_retrieve)
    X, y = load_mnist(download=True)
    assert len(y) == 10000
    assert all(h.startswith("md5:") for _, h in calls) and len(calls) == 2


def test_corrupted_file_is_refused(tmp_path, mnist_dir):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(10))
    with pytest.raises(ValueError, match="corrupted"):
        load_mnist(root=tmp_path, download=False)


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"split": "valid"}, ValueError),
        ({"digits": [11]}, ValueError),
        ({"digits": []}, ValueError),
        ({"limit": 0}, ValueError),
        ({"scale": 1.0}, TypeError),
    ],
)
def test_load_mnist_bad_arguments(kwargs, exc, mnist_dir):
    with pytest.raises(exc):
        load_mnist(root=mnist_dir, download=False, **kwargs)


def test_xor_and_parity():
    X, y = xor_data()
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0]
    X3, y3 = xor_data(3)
    assert X3.shape == (8, 3) and (y3 == X3.sum(1) % 2).all()
    with pytest.raises(ValueError):
        xor_data(0)
    with pytest.raises(TypeError):
        xor_data(2.0)


def test_toy_sets_are_seeded_and_shaped():
    a, b = circle_data(100, seed=3), circle_data(100, seed=3)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], circle_data(100, seed=4)[0])
    X, y = circle_data(20000, seed=0)
    assert np.abs(X).max() <= 1 and np.array_equal(
        y, ((X**2).sum(1) > np.sqrt(2 / np.pi)).astype(int)
    )
    S, t = spirals(200, seed=0, noise=0.0)
    assert S.shape == (200, 2) and np.bincount(t).tolist() == [100, 100]
    assert np.allclose(np.linalg.norm(S[1::2], axis=1).max(), 1.0, atol=0.02)
    R, r = random_labels(100, 100, seed=1)
    assert R.shape == (100, 100) and set(np.unique(r)) == {0, 1}
    P, xs = grid(-2, 2, 5)
    assert P.shape == (25, 2) and xs[0] == -2 and xs[-1] == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda: circle_data(0, 1),
        lambda: spirals(10, 0, noise=-1),
        lambda: random_labels(10, 10, 0, n_classes=1),
        lambda: grid(1, 0),
        lambda: circle_data(10, -1),
    ],
)
def test_toy_bad_input(call):
    with pytest.raises((ValueError, TypeError)):
        call()


def test_load_mnist_train_split_offline(mnist_dir):
    """The training split in ../shared is recompressed: accepted by its content md5."""
    if not (mnist_dir / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST training split not found in {mnist_dir}")
    X, y = load_mnist("train", root=mnist_dir, download=False)
    assert X.shape == (60000, 784) and y.shape == (60000,)
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_recompressed_canonical_content_is_accepted(tmp_path, mnist_dir):
    """A .gz whose bytes differ from the published one but whose content is canonical."""
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(mnist_dir / name, "rb") as src, gzip.open(tmp_path / name, "wb", 1) as dst:
            dst.write(src.read())
    assert (
        mnist_mod._md5(tmp_path / "t10k-labels-idx1-ubyte.gz")
        != mnist_mod.MNIST_FILES["test"]["labels"][1]
    )
    X, y = load_mnist(root=tmp_path, download=False)
    assert len(y) == 10000 and y[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.parametrize("damage", ["truncate", "not-gzip", "flip"])
def test_truncated_or_damaged_file_is_refused(tmp_path, mnist_dir, damage):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "not-gzip":
        target.write_bytes(b"not a gzip file at all")
    else:  # same length, one content byte changed, validly recompressed
        with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz", "rb") as f:
            raw = bytearray(f.read())
        raw[5000] ^= 0xFF
        with gzip.open(target, "wb") as f:
            f.write(bytes(raw))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist(root=tmp_path, download=False)
