"""Tensor methods of issue 10 (op breadth), as one dict installed on ``Tensor`` by
``install()`` (called from ``dualgraph/eager/__init__.py``).

The primitives of ``ops.math_ops`` / ``ops.shape_ops`` declare their methods in their
registry entries (``tensor_methods``), which the eager layer installs; composites are listed
here.  ``sum mean var flatten`` replace the earlier, narrower versions
(``dtype=``, ``correction=``, ``axis=``/``keepdims=``, ``start_dim``/``end_dim``).
"""
from __future__ import annotations

from ..ops import math_ops as M
from ..ops import more_composites as MC
from ..ops import shape_ops as S
from . import creation


def _reflected(f):
    def r(self, other):
        return f(other, self)

    return r


def _div(self, other, *, rounding_mode=None):
    return MC.div(self, other, rounding_mode=rounding_mode)


METHODS = {
    "__rmod__": _reflected(M.remainder),
    "__rfloordiv__": _reflected(M.floor_divide),
    # 1. elementwise
    "square": MC.square,
    "reciprocal": MC.reciprocal,
    "rsqrt": MC.rsqrt,
    "frac": MC.frac,
    "isnan": MC.isnan,
    "isinf": MC.isinf,
    "isfinite": MC.isfinite,
    "isposinf": MC.isposinf,
    "isneginf": MC.isneginf,
    "nan_to_num": MC.nan_to_num,
    "clip": MC.clip,
    "clamp": MC.clamp,
    "lerp": MC.lerp,
    "div": _div,
    "divide": _div,
    "true_divide": MC.true_divide,
    # 2. reductions and scans
    "sum": MC.sum,
    "mean": MC.mean,
    "prod": MC.prod,
    "var": MC.var,
    "std": MC.std,
    "amax": MC.amax,
    "amin": MC.amin,
    "logsumexp": MC.logsumexp,
    "norm": MC.norm,
    "cumsum": MC.cumsum,
    "cumprod": MC.cumprod,
    "any": MC.any,
    "all": MC.all,
    "sort": MC.sort,
    "argsort": MC.argsort,
    "topk": MC.topk,
    # 3. shape and indexing
    "flatten": MC.flatten,
    "unflatten": MC.unflatten,
    "repeat": MC.repeat,
    "tile": MC.tile,
    "expand_as": MC.expand_as,
    "flip": lambda self, *dims, **kw: MC.flip(
        self, kw["dims"] if "dims" in kw else dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims),
    "fliplr": MC.fliplr,
    "flipud": MC.flipud,
    "roll": MC.roll,
    "tril": MC.tril,
    "triu": MC.triu,
    "split": MC.split,
    "chunk": MC.chunk,
    "unbind": MC.unbind,
    "narrow": MC.narrow,
    "gather": MC.gather,
    "scatter": MC.scatter,
    "scatter_add": MC.scatter_add,
    "index_select": MC.index_select,
    "masked_fill": MC.masked_fill,
    "take_along_dim": MC.take_along_dim,
    "diag": MC.diag,
    "diagonal": MC.diagonal,
    "trace": MC.trace,
    "mm": MC.mm,
    "bmm": MC.bmm,
    "mv": MC.mv,
    "dot": MC.dot,
    "outer": MC.outer,
    # 4. factories
    "new_zeros": creation.new_zeros,
    "new_ones": creation.new_ones,
    "new_empty": creation.new_empty,
    "new_full": creation.new_full,
    "new_tensor": creation.new_tensor,
    "clone": MC.clone,
    "contiguous": creation.contiguous,
    "is_contiguous": creation.is_contiguous,
    "normal_": creation.normal_,
    "uniform_": creation.uniform_,
}


def install(cls):
    for name, f in METHODS.items():
        setattr(cls, name, f)
