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

# issue 10: nn/optim
from . import optim  # noqa: E402
from .serialization import load, save  # noqa: E402

from .static import (  # noqa: E402
    AutographError,
    ControlFlowError,
    Graph,
    GraphExecutionError,
    TracerError,
    cond,
    fori_loop,
    trace,
    while_loop,
)

# issue 10: op breadth
from .eager import creation as _creation  # noqa: E402
from .ops import math_ops as _M  # noqa: E402
from .ops import more_composites as _MC  # noqa: E402

sin, cos, tan, asin, acos, atan, atan2 = _M.sin, _M.cos, _M.tan, _M.asin, _M.acos, _M.atan, _M.atan2
arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2
sinh, cosh, floor, ceil, trunc, round = _M.sinh, _M.cosh, _M.floor, _M.ceil, _M.trunc, _M.round  # noqa: A001
log2, log10, log1p, exp2, expm1 = _M.log2, _M.log10, _M.log1p, _M.exp2, _M.expm1
fmod, remainder, floor_divide = _M.fmod, _M.remainder, _M.floor_divide
square, frac, rsqrt, reciprocal, lerp = _MC.square, _MC.frac, _MC.rsqrt, _MC.reciprocal, _MC.lerp
isnan, isinf, isfinite, isposinf, isneginf = _MC.isnan, _MC.isinf, _MC.isfinite, _MC.isposinf, _MC.isneginf
nan_to_num, clamp, clip, div, true_divide = _MC.nan_to_num, _MC.clamp, _MC.clip, _MC.div, _MC.true_divide
selu, celu = _MC.selu, _MC.celu
sum, mean, prod, var, std = _MC.sum, _MC.mean, _MC.prod, _MC.var, _MC.std  # noqa: A001
amax, amin, logsumexp, norm = _MC.amax, _MC.amin, _MC.logsumexp, _MC.norm
cumsum, cumprod, any, all = _MC.cumsum, _MC.cumprod, _MC.any, _MC.all  # noqa: A001
sort, argsort, topk = _MC.sort, _MC.argsort, _MC.topk
flatten, unflatten, permute, tile, flip, fliplr, flipud, roll = (
    _MC.flatten, _MC.unflatten, _C.permute, _MC.tile, _MC.flip, _MC.fliplr, _MC.flipud, _MC.roll)
tril, triu, split, chunk, unbind, narrow = _MC.tril, _MC.triu, _MC.split, _MC.chunk, _MC.unbind, _MC.narrow
gather, scatter, scatter_add, index_select = _MC.gather, _MC.scatter, _MC.scatter_add, _MC.index_select
masked_fill, take_along_dim, einsum = _MC.masked_fill, _MC.take_along_dim, _MC.einsum
mm, bmm, mv, dot, outer, diag, diagonal = _MC.mm, _MC.bmm, _MC.mv, _MC.dot, _MC.outer, _MC.diag, _MC.diagonal
clone = _MC.clone
eye, empty, full_like, zeros_like, ones_like, empty_like = (
    _creation.eye, _creation.empty, _creation.full_like, _creation.zeros_like, _creation.ones_like,
    _creation.empty_like)
rand_like, randn_like, randint, randint_like, randperm = (
    _creation.rand_like, _creation.randn_like, _creation.randint, _creation.randint_like, _creation.randperm)
arange, linspace, logspace = _creation.arange, _creation.linspace, _creation.logspace
# end issue 10

from .compile.api import compile  # noqa: E402,A001
from .compile.codegen import CompileError  # noqa: E402
