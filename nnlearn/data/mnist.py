"""The MNIST loader: canonical IDX files, verified by md5, never used when corrupt.

A file is accepted when either its ``.gz`` md5 is the originally published one or the md5 of
its decompressed content is the canonical content's (so a recompressed copy of the canonical
file, as ``../shared/data/mnist`` holds for the training split, is accepted too). Anything
else, a truncated or corrupted file included, is a ``ValueError`` naming the file.

Where the files are looked for, in order:

1. the ``root`` argument, if given;
2. ``$NNLEARN_DATA/mnist`` (the Makefile sets ``NNLEARN_DATA=../shared/data`` when that exists);
3. the user cache folder (``pooch.os_cache("nnlearn")/mnist``).

A file found nowhere is downloaded with pooch into the cache (hash-verified, written to a
temporary name and moved into place, so nothing half-written is left), unless
``download=False``. Offline and missing is a :class:`MnistNotFoundError` that names the
files, the folders searched and how to supply them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np
import pooch

from nnlearn.checks import finite_float, positive_int

# Canonical md5 checksums (LeCun, Cortes and Burges' original files): name, md5 of the
# published .gz, md5 of the decompressed (canonical IDX) content.
MNIST_FILES = {
    "train": {
        "images": (
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "6bbc9ace898e44ae57da46a324031adb",
        ),
        "labels": (
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "a25bea736e30d166cdddb491f175f624",
        ),
    },
    "test": {
        "images": (
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
            "2646ac647ad5339dbf082846283269ea",
        ),
        "labels": (
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    },
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


class MnistNotFoundError(FileNotFoundError):
    """An MNIST file is missing everywhere and could not be downloaded."""


def mnist_search_paths(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for the MNIST files, in order (see module docstring)."""
    paths = []
    if root is not None:
        paths.append(Path(root))
    env = os.environ.get("NNLEARN_DATA")
    if env:
        paths.append(Path(env) / "mnist")
    paths.append(Path(pooch.os_cache("nnlearn")) / "mnist")
    return paths


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified_content(path: Path, gz_md5: str, content_md5: str) -> bytes:
    """The decompressed content of ``path`` if it is a canonical MNIST file (see module
    docstring); a ``ValueError`` naming the file otherwise."""
    fix = "Delete it and supply the canonical file (or let nnlearn download it)."
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"MNIST file {path} is corrupted or truncated ({exc}). {fix}") from None
    if _md5(path) == gz_md5:
        return raw
    got = hashlib.md5(raw).hexdigest()
    if got != content_md5:
        raise ValueError(
            f"MNIST file {path} is corrupted (content md5 {got}, expected {content_md5}; "
            f".gz md5 is not the published {gz_md5} either). {fix}"
        )
    return raw


def _locate(name: str, md5: str, content_md5: str, root, download: bool) -> bytes:
    """The verified decompressed content of MNIST file ``name`` (searched, else downloaded)."""
    folders = mnist_search_paths(root)
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return _verified_content(candidate, md5, content_md5)
    cache = folders[-1]
    if download:
        errors = []
        for mirror in MIRRORS:
            try:
                fetched = pooch.retrieve(
                    mirror + name,
                    known_hash=f"md5:{md5}",
                    fname=name,
                    path=cache,
                    progressbar=False,
                )
                return _verified_content(Path(fetched), md5, content_md5)
            except Exception as exc:  # network down, mirror gone, hash mismatch
                errors.append(f"{mirror}: {type(exc).__name__}: {exc}")
        reason = "download failed (" + "; ".join(errors) + ")"
    else:
        reason = "download=False"
    searched = "\n  ".join(str(f) for f in folders)
    raise MnistNotFoundError(
        f"MNIST file {name} not found and {reason}.\nSearched:\n  {searched}\n"
        f"Fix: put the canonical {name} (md5 {md5}) in one of those folders, "
        f"e.g. set NNLEARN_DATA to a folder holding mnist/{name}."
    )


def _read_idx(raw: bytes, expected_dims: int, path: str = "MNIST file") -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expected_dims:
        raise ValueError(f"{path} is not an unsigned-byte IDX file with {expected_dims} dimensions")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * expected_dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def load_mnist(
    split: str = "test",
    *,
    digits=None,
    root: str | os.PathLike | None = None,
    download: bool = True,
    flatten: bool = True,
    scale: tuple[float, float] = (0.0, 1.0),
    limit: int | None = None,
):
    """Load an MNIST split as float32 images and int64 labels.

    Parameters
    ----------
    split : {"test", "train"}
        The 10,000-digit test split (the book's default, present offline) or the
        60,000-digit train split.
    digits : sequence of int, optional
        Keep only these digits (original order preserved).
    root : path, optional
        A folder searched first.
    download : bool
        Download missing files into the user cache (hash-verified).
    flatten : bool
        Images of shape (N, 784) if True, else (N, 28, 28).
    scale : (lo, hi)
        Pixel 0 maps to ``lo`` and pixel 255 to ``hi`` (linearly).
    limit : int, optional
        Keep the first ``limit`` examples (after the digit filter).

    Returns
    -------
    X : np.ndarray, float32, shape (N, 784) or (N, 28, 28)
    y : np.ndarray, int64, shape (N,)
    """
    if not isinstance(split, str) or split not in MNIST_FILES:
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2):
        raise TypeError(f"scale must be a (lo, hi) pair, got {scale!r}")
    lo, hi = finite_float("scale[0]", scale[0]), finite_float("scale[1]", scale[1])
    if limit is not None:
        limit = positive_int("limit", limit)
    for name, flag in (("download", download), ("flatten", flatten)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    if digits is not None:
        arr = np.atleast_1d(np.asarray(digits))
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"digits must be a non-empty sequence of ints in 0..9, got {digits!r}")
        if ((arr < 0) | (arr > 9)).any():
            raise ValueError(f"digits must be a non-empty subset of 0..9, got {arr.tolist()}")
        digits = arr.tolist()
    files = MNIST_FILES[split]
    images = _read_idx(_locate(*files["images"], root, download), 3, files["images"][0])
    labels = _read_idx(_locate(*files["labels"], root, download), 1, files["labels"][0])
    labels = labels.astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    if digits is not None:
        keep = np.isin(labels, digits)
        images, labels = images[keep], labels[keep]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    X = lo + images.astype(np.float32) * np.float32((hi - lo) / 255.0)
    if flatten:
        X = X.reshape(len(X), -1)
    return X, labels
