"""dualgraph: one program, run eagerly (define-by-run autograd) or traced into a typed
static graph with control flow, differentiated and optimised.

    import dualgraph as dg
    x = dg.tensor([2.0], requires_grad=True)
    (x ** 2 * 3).backward()
    x.grad  # tensor([12.])
"""
import numpy as _np

from . import nn
from .eager import (
    Tensor,
    arange,
    autograd,
    enable_grad,
    from_numpy,
    full,
    grad,
    is_grad_enabled,
    manual_seed,
    no_grad,
    ones,
    rand,
    randn,
    set_grad_enabled,
    tensor,
    value_and_grad,
    zeros,
)
from .eager.factories import linspace, ones_like, randint, zeros_like
from .ops import composites as _C
from .ops import primitives as _P

float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
int64 = _np.dtype(_np.int64)
int32 = _np.dtype(_np.int32)
bool = _np.dtype(_np.bool_)  # noqa: A001 - torch's name

exp = _P.exp
log = _P.log
tanh = _P.tanh
sigmoid = _P.sigmoid
sqrt = _P.sqrt
abs = _P.abs  # noqa: A001
erf = _P.erf
sign = _P.sign
maximum = _P.maximum
minimum = _P.minimum
matmul = _P.matmul
where = _P.where
relu = _C.relu
sum = _C.sum  # noqa: A001
mean = _C.mean
var = _C.var
max = _C.max  # noqa: A001
min = _C.min  # noqa: A001
argmax = _C.argmax
argmin = _C.argmin
cat = _C.cat
stack = _C.stack
softmax = _C.softmax
log_softmax = _C.log_softmax
clamp = _C.clamp
reshape = _C.reshape
transpose = _C.transpose
squeeze = _C.squeeze
unsqueeze = _C.unsqueeze

from .static import (  # noqa: E402
    ControlFlowError,
    Graph,
    GraphExecutionError,
    TracerError,
    cond,
    fori_loop,
    trace,
    while_loop,
)

from .compile.api import compile  # noqa: E402,A001
from .compile.codegen import CompileError  # noqa: E402
