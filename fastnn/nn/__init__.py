"""Layers, containers, losses and initialisers."""
from .module import Module, Parameter  # noqa: F401
from .activation import (ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, Maxout,  # noqa: F401
                         ReLU, Sigmoid, Softmax, Softplus, Tanh)
