"""Optimizers (torch.optim-compatible names, arguments and state dicts) with
fused C updates, L1 / elastic-net / max-norm regularization."""
from .optimizer import Optimizer  # noqa: F401
from .optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop  # noqa: F401
from .regularize import max_norm_, soft_threshold_  # noqa: F401
from . import regularize  # noqa: F401
from . import lr_scheduler  # noqa: F401
from .averaging import EMA, PolyakAveraging  # noqa: F401
