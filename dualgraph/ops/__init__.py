"""ops: the primitive registry (rules per primitive) and composites written in primitives."""
from . import composites, primitives
from . import nn_ops  # issue 10: conv and pooling
from .registry import PRIMITIVES, Primitive, ShapedArray, aval_of, bind, dtype_short, register

__all__ = ["PRIMITIVES", "Primitive", "ShapedArray", "aval_of", "bind", "dtype_short", "register",
           "primitives", "composites"]
