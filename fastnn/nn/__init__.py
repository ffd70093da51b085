"""Layers, containers, losses and initialisers."""
from .module import Module, Parameter  # noqa: F401
from . import utils  # noqa: F401
