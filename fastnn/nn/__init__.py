"""Layers, containers, losses and initialisers."""
from .module import Module, Parameter, is_grad_enabled, no_grad  # noqa: F401
from .layers import Dropout, Dropout2d, Flatten, GaussianNoise, Identity, Linear  # noqa: F401
from .container import Concat, Residual, Sequential  # noqa: F401
from . import init  # noqa: F401

from .loss import (BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, MultiMarginLoss,  # noqa: F401
                   NLLLoss)

from . import utils  # noqa: F401

from .activation import (ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, Maxout,  # noqa: F401
                         ReLU, Sigmoid, Softmax, Softplus, Tanh)

from .conv import Conv1d, Conv2d  # noqa: F401
from .pool import (AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d,  # noqa: F401
                   MaxPool2d)
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm, SyncBatchNorm  # noqa: F401
from .rnn import (GRU, LSTM, RNN, Embedding, GRUCell, LastStep, LSTMCell, RNNCell,  # noqa: F401
                  RNNOutput, TimePool)
