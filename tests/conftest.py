import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tests/inputs.py (the bad-input harness) is importable from tests/studies/ too.
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    """The canonical MNIST folder (tests needing it are skipped, loudly, where it is absent)."""
    env = os.environ.get("NNLEARN_DATA")
    folder = Path(env) / "mnist" if env else SHARED_MNIST
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST test split not found in {folder}; set NNLEARN_DATA")
    return folder
