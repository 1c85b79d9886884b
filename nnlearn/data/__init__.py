"""Data sets: MNIST (offline first, checksummed) and small seeded toy tasks."""

from nnlearn.data.mnist import MNIST_FILES, MnistNotFoundError, load_mnist, mnist_search_paths
from nnlearn.data.toy import circle_data, grid, random_labels, spirals, xor_data

__all__ = [
    "MNIST_FILES",
    "MnistNotFoundError",
    "circle_data",
    "grid",
    "load_mnist",
    "mnist_search_paths",
    "random_labels",
    "spirals",
    "xor_data",
]
