"""Layers, containers, losses and initialisers."""
from .module import Module, Parameter  # noqa: F401
from .loss import (BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, MultiMarginLoss,  # noqa: F401
                   NLLLoss)
