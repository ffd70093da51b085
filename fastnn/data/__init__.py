"""Data pipeline: mini-batch loading, preprocessing and splitting.

The data sets themselves (MNIST reader, bundled digits) live in
``fastnn.datasets``; the bundled digits file ships in this package's folder."""
from .loader import DataLoader  # noqa: F401
from . import augment  # noqa: F401
from .preprocess import Standardizer, train_test_split  # noqa: F401

__all__ = ["DataLoader", "Standardizer", "train_test_split", "augment"]
