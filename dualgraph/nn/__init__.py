"""``dg.nn``: modules, parameters, initialisers and the functional forms, as ``torch.nn``.

    import dualgraph as dg
    from dualgraph import nn
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    loss = nn.functional.cross_entropy(model(x), y)
"""
from . import functional, init, utils
from .module import Module
from .modules import *  # noqa: F403
from .modules import __all__ as _modules_all
from .parameter import Buffer, Parameter

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Buffer", *_modules_all]
