"""fastnn: fast CPU neural-network training in C kernels under a numpy API."""
__version__ = "0.1.0"

from .runtime import (available_isas, get_isa, get_num_threads, info,  # noqa: F401
                      manual_seed, set_isa, set_num_threads)
from .runtime import _init_from_env
from . import data, datasets, nn, ops, optim  # noqa: F401
from .io import load, save  # noqa: F401
from .nn.module import is_grad_enabled, no_grad  # noqa: F401
from .train import Trainer  # noqa: F401
from . import ensemble, functional, models, train  # noqa: F401

_init_from_env()
del _init_from_env
