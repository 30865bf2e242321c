"""eager: Tensor, the autograd tape and engine, grad modes, factories."""
from . import autograd
from .factories import arange, from_numpy, full, manual_seed, ones, rand, randn, tensor, zeros
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor
from .transforms import grad, value_and_grad
from . import methods as _methods  # issue 10: op breadth (Tensor methods)
_methods.install(Tensor)

__all__ = ["Tensor", "autograd", "tensor", "from_numpy", "zeros", "ones", "full", "arange", "randn",
           "rand", "manual_seed", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
           "grad", "value_and_grad"]
